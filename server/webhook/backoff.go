package webhook

import (
	"math/rand/v2"
	"time"
)

// DefaultSchedule is how long a delivery waits after each failed attempt before the
// next, the schedule of Svix (the Standard Webhooks reference): 8 attempts over about
// 27 hours, then the delivery has failed.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// retryAfter returns when a delivery whose attempt number n (1 for the first) just
// failed is due again, and false when the schedule is spent. The wait is the
// schedule's, jittered between half and one and a half of it: deliveries that failed
// together (a receiver down for a minute) come back spread out, not in one burst, and
// the schedule still spans about a day however the dice fall.
func retryAfter(schedule []time.Duration, n int, now time.Time) (time.Time, bool) {
	if n < 1 || n > len(schedule) {
		return time.Time{}, false
	}
	base := schedule[n-1]
	if base <= 0 {
		return now, true
	}
	return now.Add(base/2 + rand.N(base)), true
}
