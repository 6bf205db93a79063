package sockact

import (
	"testing"
	"time"
)

func TestTraceRoundTrip(t *testing.T) {
	in := Trace{Main: 11186*time.Second + 872_879*time.Microsecond, Listeners: 11186*time.Second + 878_900*time.Microsecond, Exec: 11186*time.Second + 879_001*time.Microsecond}
	// As journalctl shows it: the unit's prefix before the line.
	out, ok := ParseTrace("Nov 30 07:58:26 vm beamdeploy[170]: " + in.String())
	if !ok || out != in {
		t.Fatalf("ParseTrace(%q) = %+v, %v; want %+v", in.String(), out, ok, in)
	}
	for _, line := range []string{"", "hello starting", tracePrefix + " main=x"} {
		if _, ok := ParseTrace(line); ok {
			t.Errorf("ParseTrace(%q) accepted a line that is no trace", line)
		}
	}
}
