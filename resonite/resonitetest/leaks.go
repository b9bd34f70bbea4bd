package resonitetest

import "go.uber.org/goleak"

// IgnoreLibraryLeaks is the goleak option for the one goroutine of the signalr library that
// tests of a hub client must let go: when a connection ends while a call is being sent, the
// library's Invoke (client.go:438 in v0.7.0) returns without reading the inner result channel it
// made, and that channel's forwarding goroutine (Invokeresult.go:36) can block on a send
// forever. It belongs to the library, holds nothing of ours, and only shows when a connection
// drops in the middle of a call (on a loaded machine).
func IgnoreLibraryLeaks() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/philippseith/signalr.newInvokeResultChan.func1")
}
