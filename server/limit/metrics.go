package limit

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the series every mail listener keeps of its connections and logins,
// named after its protocol: mayfly_<proto>_sessions open now,
// mayfly_<proto>_refused_total by the per-client limit that refused (reason),
// mayfly_<proto>_logins_total by result, and a count of the connections turned away
// because MaxConnections were open, which each protocol named its own way first.
type Metrics struct {
	Sessions prometheus.Gauge
	Full     prometheus.Counter
	Refused  *prometheus.CounterVec
	Logins   *prometheus.CounterVec
}

// Series is a series' help text and the label values it shows, at 0, from the start:
// a series that appears only at its first count reads as no data rather than none.
type Series struct {
	Help   string
	Values []string
}

// NewMetrics makes a listener's Metrics and registers them with reg; nil = not
// exported. full is the name and help of Metrics.Full.
func NewMetrics(reg prometheus.Registerer, proto, sessionsHelp string, full [2]string, refused, logins Series) Metrics {
	m := Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mayfly_" + proto + "_sessions", Help: sessionsHelp}),
		Full:     prometheus.NewCounter(prometheus.CounterOpts{Name: full[0], Help: full[1]}),
		Refused:  CounterVec(nil, "mayfly_"+proto+"_refused_total", "reason", refused),
		Logins:   CounterVec(nil, "mayfly_"+proto+"_logins_total", "result", logins),
	}
	if reg != nil {
		reg.MustRegister(m.Sessions, m.Full, m.Refused, m.Logins)
	}
	return m
}

// CounterVec returns a counter vector of s by label, registered with reg; nil = not
// exported.
func CounterVec(reg prometheus.Registerer, name, label string, s Series) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: s.Help}, []string{label})
	for _, x := range s.Values {
		v.WithLabelValues(x)
	}
	if reg != nil {
		reg.MustRegister(v)
	}
	return v
}
