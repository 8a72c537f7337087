/*
Copyright The kubelet-fileprobe Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A mix is which file probes every pod of a case has.
type mix string

const (
	mixR   mix = "R"   // a readiness probe
	mixRL  mix = "RL"  // a readiness and a liveness probe
	mixRLS mix = "RLS" // a readiness, a liveness and a startup probe
)

func (m mix) readiness() bool { return strings.Contains(string(m), "R") }
func (m mix) liveness() bool  { return strings.Contains(string(m), "L") }
func (m mix) startup() bool   { return strings.Contains(string(m), "S") }

// periodic is how many probes of a pod of the mix run every period once its
// container started: a startup probe stops probing at its first success.
func (m mix) periodic() int {
	n := 0
	if m.readiness() {
		n++
	}
	if m.liveness() {
		n++
	}
	return n
}

// seriesSpec is one series of cases: a mix and a period, for each number of
// pods.
type seriesSpec struct {
	mix    mix
	period int32
	pods   []int
}

func (s seriesSpec) String() string {
	return fmt.Sprintf("%s/%d", s.mix, s.period)
}

// parseSeries parses "MIX/PERIOD:N,N,... MIX/PERIOD:N,...".
func parseSeries(s string) ([]seriesSpec, error) {
	var out []seriesSpec
	for _, field := range strings.Fields(s) {
		head, pods, ok := strings.Cut(field, ":")
		if !ok {
			return nil, fmt.Errorf("series %q: want MIX/PERIOD:N,N,...", field)
		}
		m, period, ok := strings.Cut(head, "/")
		if !ok {
			return nil, fmt.Errorf("series %q: want MIX/PERIOD:N,N,...", field)
		}
		spec := seriesSpec{mix: mix(m)}
		switch spec.mix {
		case mixR, mixRL, mixRLS:
		default:
			return nil, fmt.Errorf("series %q: unknown mix %q (R, RL, RLS)", field, m)
		}
		p, err := strconv.ParseInt(period, 10, 32)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("series %q: bad period %q", field, period)
		}
		spec.period = int32(p)
		for _, n := range strings.Split(pods, ",") {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("series %q: bad number of pods %q", field, n)
			}
			spec.pods = append(spec.pods, v)
		}
		out = append(out, spec)
	}
	return out, nil
}

// lateness returns how late each probe of one worker ran, given the times
// it ran at (in order) and its period: a worker's probes are due on a grid
// of its period (upstream's ticker, or a manual trigger that resets it), and
// the probe that ran closest to the grid is taken as on time. Each time is
// folded onto the grid relative to the first one (a probe more than half a
// period late would be taken as early: the results report such lateness as
// missing probes instead, see due). A delay common to all the probes of a
// worker is not seen. Fewer than two probes say nothing.
func lateness(times []time.Duration, period time.Duration) []time.Duration {
	if len(times) < 2 || period <= 0 {
		return nil
	}
	offsets := make([]time.Duration, len(times))
	for i, t := range times {
		r := (t - times[0]) % period
		if r > period/2 {
			r -= period
		}
		offsets[i] = r
	}
	least := slices.Min(offsets)
	for i := range offsets {
		offsets[i] -= least
	}
	return offsets
}

// percentile returns the p-th percentile (0-100, nearest rank) of values,
// which it sorts.
func percentile(values []time.Duration, p float64) time.Duration {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	rank := int(p/100*float64(len(values))+0.5) - 1
	return values[min(max(rank, 0), len(values)-1)]
}

// median returns the median of values (the mean of the middle two for an
// even count), without changing values.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
