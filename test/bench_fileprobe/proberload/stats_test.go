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
	"reflect"
	"testing"
	"time"
)

func TestLateness(t *testing.T) {
	const ms = time.Millisecond
	s := time.Second
	for _, tc := range []struct {
		name   string
		times  []time.Duration
		period time.Duration
		want   []time.Duration
	}{
		{name: "no probe", period: s},
		{name: "one probe says nothing", times: []time.Duration{5 * s}, period: s},
		{name: "on the grid", times: []time.Duration{5 * s, 6 * s, 7 * s}, period: s, want: []time.Duration{0, 0, 0}},
		{name: "the first probe late", times: []time.Duration{5*s + 30*ms, 6 * s, 7*s + 10*ms}, period: s, want: []time.Duration{30 * ms, 0, 10 * ms}},
		{name: "a skipped tick is not lateness", times: []time.Duration{5 * s, 7*s + 20*ms}, period: s, want: []time.Duration{0, 20 * ms}},
		{name: "period 10", times: []time.Duration{3 * s, 13*s + 99*ms, 23*s + 1*ms}, period: 10 * s, want: []time.Duration{0, 99 * ms, 1 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lateness(tc.times, tc.period); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lateness(%v, %v) = %v, want %v", tc.times, tc.period, got, tc.want)
			}
		})
	}
}

func TestPercentileAndMedian(t *testing.T) {
	values := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {99, 10}, {100, 10}, {0, 1}, {10, 1}, {90, 9}} {
		if got := percentile(values, tc.p); got != tc.want {
			t.Errorf("percentile(p%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	for _, tc := range []struct {
		values []float64
		want   float64
	}{{nil, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.values); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

func TestParseSeries(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []seriesSpec
		wantErr bool
	}{
		{in: "R/1:100,300 RLS/10:1000", want: []seriesSpec{{mixR, 1, []int{100, 300}}, {mixRLS, 10, []int{1000}}}},
		{in: ""},
		{in: "R/1", wantErr: true},
		{in: "X/1:10", wantErr: true},
		{in: "R/0:10", wantErr: true},
		{in: "R/1:0", wantErr: true},
		{in: "R1:10", wantErr: true},
	} {
		got, err := parseSeries(tc.in)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseSeries(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMix(t *testing.T) {
	for _, tc := range []struct {
		m                            mix
		readiness, liveness, startup bool
		periodic                     int
	}{
		{mixR, true, false, false, 1},
		{mixRL, true, true, false, 2},
		{mixRLS, true, true, true, 2},
	} {
		if tc.m.readiness() != tc.readiness || tc.m.liveness() != tc.liveness || tc.m.startup() != tc.startup || tc.m.periodic() != tc.periodic {
			t.Errorf("mix %s: %v %v %v %d", tc.m, tc.m.readiness(), tc.m.liveness(), tc.m.startup(), tc.m.periodic())
		}
	}
}
