package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Directions of relayed messages, the values of the "direction" label.
const (
	DirectionDiscordToResonite = "discord_to_resonite"
	DirectionResoniteToDiscord = "resonite_to_discord"
)

// metrics holds the bridge's Prometheus metrics on a registry of its own (not the global
// default, so tests and several daemons in one process never collide). Every method is safe
// on a nil *metrics, so components can be built without one in tests. Other packages call
// it through small interfaces of their own, hence plain string and bool arguments.
type metrics struct {
	reg              *prometheus.Registry
	relayed          *prometheus.CounterVec
	deliveryFailures *prometheus.CounterVec
	queueDepth       prometheus.Gauge
	hubConnected     prometheus.Gauge
	gatewayConnected prometheus.Gauge
}

func newMetrics(version string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resonite_bridge_messages_relayed_total",
			Help: "Messages delivered to the other side, by direction.",
		}, []string{"direction"}),
		deliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resonite_bridge_delivery_failures_total",
			Help: "Failed delivery attempts (each is retried), by direction.",
		}, []string{"direction"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resonite_bridge_queue_depth",
			Help: "Messages stored and not yet delivered, polled from the database.",
		}),
		hubConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resonite_bridge_hub_connected",
			Help: "1 while the Resonite SignalR hub is connected.",
		}),
		gatewayConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "resonite_bridge_discord_gateway_connected",
			Help: "1 while the Discord gateway is connected.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "resonite_bridge_build_info",
		Help:        "Always 1; the version label names the running build.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.relayed, m.deliveryFailures, m.queueDepth, m.hubConnected, m.gatewayConnected, buildInfo,
	)
	// Both directions show up at 0 from the start, so rate() and alerts work before traffic.
	for _, d := range []string{DirectionDiscordToResonite, DirectionResoniteToDiscord} {
		m.relayed.WithLabelValues(d)
		m.deliveryFailures.WithLabelValues(d)
	}
	return m
}

// MessageRelayed counts one message delivered in direction (Direction* constants).
func (m *metrics) MessageRelayed(direction string) { m.MessagesRelayed(direction, 1) }

// MessagesRelayed counts n messages delivered in direction.
func (m *metrics) MessagesRelayed(direction string, n uint64) {
	if m != nil && n > 0 {
		m.relayed.WithLabelValues(direction).Add(float64(n))
	}
}

// DeliveryFailed counts one failed delivery attempt in direction.
func (m *metrics) DeliveryFailed(direction string) { m.DeliveriesFailed(direction, 1) }

// DeliveriesFailed counts n failed delivery attempts in direction.
func (m *metrics) DeliveriesFailed(direction string, n uint64) {
	if m != nil && n > 0 {
		m.deliveryFailures.WithLabelValues(direction).Add(float64(n))
	}
}

// SetQueueDepth records how many messages wait for delivery.
func (m *metrics) SetQueueDepth(n int64) {
	if m != nil {
		m.queueDepth.Set(float64(n))
	}
}

// SetHubConnected records the Resonite hub connection state.
func (m *metrics) SetHubConnected(connected bool) {
	if m != nil {
		m.hubConnected.Set(boolFloat(connected))
	}
}

// SetGatewayConnected records the Discord gateway connection state.
func (m *metrics) SetGatewayConnected(connected bool) {
	if m != nil {
		m.gatewayConnected.Set(boolFloat(connected))
	}
}

// handler serves the registry in the Prometheus exposition format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
