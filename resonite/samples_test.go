package resonite_test

// JSON as the Resonite cloud writes it, rebuilt from the fact sheet (/work/shared/resonite-api.md
// §1 and §4): the decoding tests, the hub event tests, the fuzz seeds and the benchmark share it.

const sampleLoginReply = `{
  "entity": {
    "userId": "U-Example", "token": "base64ish-token=",
    "created": "2025-05-24T20:49:29.6335177Z", "expire": "2025-06-23T20:49:29.63359Z",
    "rememberMe": true, "secretMachineIdHash": "c21oYXNo=", "secretMachineIdSalt": "c21zYWx0=",
    "uidHash": "dWlkaGFzaA==", "uidSalt": "dWlkc2FsdA==", "originalLoginType": "Password",
    "originalLoginId": "Auth-2b7c5d84-5f0e-4a8e-9a53-0c7c2f3b8e11", "logoutUrl": null, "logoutUrlClientSide": false,
    "sessionLoginCounter": 1, "sourceIP": "203.0.113.7", "userAgent": "resonite-bridge", "isMachineBound": false,
    "partitionKey": "U-Example", "rowKey": "base64ish-token=", "eTag": null
  },
  "configFiles": [{"path": "app.json", "content": "{}"}]
}`

const sampleMessage = `{
  "id": "MSG-3f2b8a41-7c1e-4e0b-9d1a-5b6c7d8e9f00", "ownerId": "U-Me", "senderId": "U-Me", "recipientId": "U-Friend",
  "senderUserSessionId": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "otherId": "U-Friend",
  "messageType": "Text", "content": "hello",
  "sendTime": "2025-05-24T22:04:10.485Z", "lastUpdateTime": "2025-05-24T22:04:11.1686453Z",
  "readTime": null, "isMigrated": false
}`

const sampleMarkReadBatch = `{ "senderId": "U-Friend", "ids": ["MSG-a", "MSG-b"], "readTime": "2025-05-24T22:05:00Z" }`

const sampleReadMessageBatch = `{"recipientId":"U-Friend","ids":["MSG-a","MSG-b"],"readTime":"2025-05-24T22:05:00.1234567Z"}`

const sampleUserStatus = `{
  "userId": "U-Friend", "userSessionId": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "sessionType": "GraphicalClient",
  "outputDevice": "VR", "isMobile": false, "onlineStatus": "Online", "isPresent": true,
  "lastPresenceTimestamp": "2025-05-24T21:56:38.0139458Z", "lastStatusChange": "2025-05-24T21:56:38.0179458Z",
  "hashSalt": "base64salt=", "appVersion": "2025.5.23.1096", "compatibilityHash": "Y29tcGF0==",
  "publicRSAKey": { "Exponent": "AQAB", "Modulus": "bW9kdWx1cw==" },
  "sessions": [
    { "sessionHash": "A1B2C3", "accessLevel": "Contacts", "sessionHidden": false, "isHost": true, "broadcastKey": "BK-theater" },
    { "sessionHash": "D4E5F6", "accessLevel": "Private", "sessionHidden": true, "isHost": false, "broadcastKey": null }
  ],
  "currentSessionIndex": 0
}`

// sampleHeadlessStatus is what a headless host broadcasts: no online status, no device.
const sampleHeadlessStatus = `{
  "userId": "U-Host", "userSessionId": "0190ffff-0000-7000-8000-000000000001", "sessionType": "Headless",
  "outputDevice": null, "isMobile": false, "onlineStatus": null, "isPresent": false,
  "lastPresenceTimestamp": null, "lastStatusChange": "0001-01-01T00:00:00",
  "hashSalt": "", "appVersion": "2025.5.23.1096", "compatibilityHash": "", "publicRSAKey": null,
  "sessions": [], "currentSessionIndex": -1
}`

// sampleIntegerStatus is ReCon's habit of broadcasting the ordinals.
const sampleIntegerStatus = `{"userId":"U-Recon","userSessionId":"s1","sessionType":2,"outputDevice":1,"onlineStatus":3,
  "isPresent":true,"lastStatusChange":"2025-05-24T21:56:38Z","sessions":[],"currentSessionIndex":-1}`

const sampleContact = `{
  "id": "U-Friend", "contactUsername": "Friend", "ownerId": "U-Me",
  "contactStatus": "Accepted", "isAccepted": true,
  "profile": { "iconUrl": "resdb:///0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0.webp", "tagline": null, "description": null, "displayBadges": [] },
  "latestMessageTime": "2025-05-22T13:48:02.0945221Z",
  "alternateUsernames": [], "isMigrated": false, "isCounterpartMigrated": false
}`

const sampleUser = `{
  "id": "U-Example", "username": "Example", "normalizedUsername": "example",
  "registrationDate": "2024-01-18T16:05:48.6143996Z", "isVerified": true, "isLocked": false,
  "supressBanEvasion": false, "2fa_login": true, "tags": ["hearing impaired"],
  "profile": { "iconUrl": "resdb:///abc.webp", "tagline": "Hi there", "displayBadges": [], "description": "About me" },
  "supporterMetadata": [ { "$type": "patreon", "isActiveSupporter": true, "totalSupportMonths": 1 } ],
  "entitlements": [
    { "$type": "credits", "creditType": "Basic", "friendlyDescription": "Basic credits", "entitlementOrigins": ["Patreon"] },
    { "$type": "storageSpace", "bytes": 1073741824, "maximumShareLevel": 0, "storageId": "U-Example" }
  ],
  "isActiveSupporter": true,
  "publicBanExpiration": "2026-01-01T00:00:00Z", "publicBanType": "Standard",
  "muteBanExpiration": null, "accountBanExpiration": "0001-01-01T00:00:00"
}`

const sampleSession = `{
  "name": "The <color=yellow>Hidden Star Theater</color>", "description": "Movies <b>every</b> night",
  "correspondingWorldId": { "recordId": "R-5e1f2a3b", "ownerId": "U-Host" }, "tags": ["movie"],
  "sessionId": "S-U-Host:HiddenStarTheater", "normalizedSessionId": "s-u-host:hiddenstartheater",
  "hostUserId": "U-Host", "hostUserSessionId": "0190ffff-0000-7000-8000-000000000001", "hostMachineId": "machine-1", "hostUsername": "Host",
  "compatibilityHash": "Y29tcGF0==", "systemCompatibilityHash": "c3lzdGVt==",
  "dataModelAssemblies": [ { "name": "FrooxEngine", "compatibilityHash": "ZnJvb3g==" } ],
  "universeId": null, "appVersion": "2025.5.23.42", "headlessHost": true,
  "sessionURLs": ["lnl-nat://8c0a6f5e-1b2c-4d3e-8f9a-0b1c2d3e4f5a/S-U-Host:HiddenStarTheater"], "parentSessionIds": [], "nestedSessionIds": [],
  "sessionUsers": [
    { "username": "someone", "userID": "U-Someone", "userSessionId": null, "isPresent": true, "outputDevice": 1 },
    { "username": "vr-fan", "userID": "U-VrFan", "userSessionId": "0190aaaa-0000-7000-8000-000000000002", "isPresent": false, "outputDevice": 2 }
  ],
  "thumbnailUrl": "https://skyfrost-archive.resonite.com/thumbnails/4d3e8f9a-0b1c-2d3e-4f5a-8c0a6f5e1b2c.webp",
  "joinedUsers": 2, "activeUsers": 1, "totalJoinedUsers": 2, "totalActiveUsers": 1, "maxUsers": 34,
  "mobileFriendly": false, "sessionBeginTime": "2025-05-24T18:00:00.1234567Z", "lastUpdate": "2025-05-24T22:03:00.7654321Z",
  "accessLevel": "Anyone", "hideFromListing": false, "broadcastKey": null,
  "awayKickEnabled": false, "awayKickMinutes": 5, "hasEnded": false, "isValid": true
}`

const sampleOnlineStats = `{
  "registeredUsers": 412345, "presentUsers": 3012, "awayUsers": 655, "instanceCount": 1890,
  "usersInVR": 1500, "usersInScreen": 1400, "usersOnDesktop": 2700, "usersOnMobile": 12,
  "usersInVisiblePublicSessions": 800, "usersInVisibleSemiAccessibleSessions": 300,
  "usersInHiddenSessions": 150, "usersInPrivateSessions": 900,
  "usersBySessionAccessLevel": {"Private": 900, "LAN": 2, "Contacts": 400, "ContactsPlus": 100, "RegisteredUsers": 50, "Anyone": 800},
  "usersByClientType": {"Headless": 120, "ChatClient": 40, "GraphicalClient": 2852},
  "visibleSessionsByAccessLevel": {"Anyone": 300}, "hiddenSessionsByAccessLevel": {"Private": 700},
  "captureTimestamp": "2025-05-24T22:05:00.0000001Z"
}`

// sampleRecordContent is the content of an Object or Sound message: a Record, JSON in a string.
const sampleRecordContent = `{"id":"R-9a8b7c6d","ownerId":"U-Friend","assetUri":"resdb:///1a2b3c4d5e6f.ogg","name":"Voice message",
  "description":null,"recordType":"audio","thumbnailUri":null,"tags":["message_item","message_id:MSG-1","voice"],
  "isPublic":false,"creationTime":"2025-05-24T22:04:10.4850000Z","lastModificationTime":"0001-01-01T00:00:00"}`

// sampleInviteRequestContent is the content of an InviteRequest message.
const sampleInviteRequestContent = `{"inviteRequestId":"IR-1","userIdToInvite":"U-Guest","usernameToInvite":"Guest",
  "requestingFromUserId":"U-Friend","requestingFromUsername":"Friend","forSessionId":"S-U-Host:HiddenStarTheater",
  "forSessionName":"The Hidden Star Theater","isContactOfHost":true,"response":"SendInvite","invite":null}`
