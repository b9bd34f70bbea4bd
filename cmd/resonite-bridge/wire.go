package main

// productionHooks wires the real packages into the daemon.
//
// For the lead: openDB should return an adapter over *store.Store (store.Open, then Migrate,
// Ping, Close, QueueStats summed into QueueDepth, and the stored-session check), and components
// should build the Resonite client/hub, the Discord bot and the bridge from deps, each adapted
// to the component interface (Name, Run blocking until ctx is done, Ready). Components report
// connection state through deps.Metrics (SetHubConnected, SetGatewayConnected, MessageRelayed,
// DeliveryFailed).
func productionHooks() hooks {
	return hooks{}
}
