// Connects to the fake hub with the official JavaScript client (@microsoft/signalr) and
// exercises it: a normal invocation, a non-blocking send, a server stream and pushed events.
// Driven by js_test.go, which passes HUB_URL, HUB_AUTH, SKIP_NEGOTIATION and SIGNALR_JS_DIR,
// and pushes a ReceiveMessage once this script prints "ready". Exits 0 when all worked.
"use strict";
const path = require("path");
const signalR = require(path.join(process.env.SIGNALR_JS_DIR, "node_modules", "@microsoft", "signalr"));

const fail = (what, err) => {
  console.error(`FAIL ${what}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
};
const deadline = setTimeout(() => fail("deadline", "the check took longer than 20 s"), 20000);

// waitFor resolves with the first arguments of target that satisfy ok.
function waitFor(conn, target, ok) {
  return new Promise((resolve) => {
    const handler = (...args) => {
      if (ok(...args)) {
        conn.off(target, handler);
        resolve(args);
      }
    };
    conn.on(target, handler);
  });
}

async function main() {
  const conn = new signalR.HubConnectionBuilder()
    .withUrl(process.env.HUB_URL, {
      transport: signalR.HttpTransportType.WebSockets,
      skipNegotiation: process.env.SKIP_NEGOTIATION === "1",
      headers: { Authorization: process.env.HUB_AUTH },
    })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  // Pushes the script does not wait for must not trouble the client either.
  conn.on("ContactAddedOrUpdated", () => {});

  await conn.start().catch((e) => fail("start", e));

  // A normal invocation with a value result; its push (ContactAddedOrUpdated) comes too.
  const contact = waitFor(conn, "ContactAddedOrUpdated", (c) => c && c.id === "U-JS");
  const ok = await conn
    .invoke("UpdateContact", { id: "U-JS", contactUsername: "JS", contactStatus: "Accepted" })
    .catch((e) => fail("invoke UpdateContact", e));
  if (ok !== true) fail("invoke UpdateContact", `result ${JSON.stringify(ok)}, want true`);
  await contact;

  // A void invocation resolves too.
  await conn.invoke("ListenOnKey", "BK-js").catch((e) => fail("invoke ListenOnKey", e));

  // A non-blocking send: no answer; the hub pushes Pong(index) to this connection.
  const pong = waitFor(conn, "pong", (i) => i === 42); // targets match case-insensitively
  await conn.send("Ping", 42).catch((e) => fail("send Ping", e));
  await pong;

  // A server stream.
  const items = await new Promise((resolve, reject) => {
    const got = [];
    conn.stream("InitializeContacts").subscribe({
      next: (c) => got.push(c.id),
      complete: () => resolve(got),
      error: reject,
    });
  }).catch((e) => fail("stream InitializeContacts", e));
  const want = JSON.parse(process.env.WANT_CONTACTS);
  if (JSON.stringify(items) !== JSON.stringify(want)) fail("stream InitializeContacts", `items ${JSON.stringify(items)}, want ${JSON.stringify(want)}`);

  // Calling the stream with invoke is an error the client reports.
  const err = await conn.invoke("InitializeContacts").then(() => null, (e) => e);
  if (!err || !String(err.message).includes("non-streaming invocation")) fail("invoke of a stream", `got ${err}`);

  // A push the Go side sends when told we are ready.
  const pushed = waitFor(conn, "ReceiveMessage", (m) => m && m.id === "MSG-from-go");
  console.log("ready");
  await pushed;

  await conn.stop();
  clearTimeout(deadline);
  console.log("ok");
}

main().catch((e) => fail("main", e));
