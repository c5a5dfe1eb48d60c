package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func gaugeValue(g prometheus.Gauge) float64 { return testutil.ToFloat64(g) }
