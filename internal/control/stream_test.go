package control_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beamdeploy/beamdeploy/internal/control"
)

func readResult(in string) (control.Result, []control.Progress, error) {
	var res control.Result
	var prog []control.Progress
	err := control.ReadStream(strings.NewReader(in), control.TypeResult, func(p control.Progress) { prog = append(prog, p) },
		func(b []byte) error { return json.Unmarshal(b, &res) })
	return res, prog, err
}

func TestReadStream(t *testing.T) {
	res, prog, err := readResult(`{"message_type":"progress","message":"starting"}
{"message_type":"something-new"}
{"message_type":"result","id":"s1","ok":true}
{"message_type":"progress","message":"after the end: not read"}
`)
	require.NoError(t, err)
	assert.Equal(t, "s1", res.ID)
	assert.True(t, res.OK)
	require.Len(t, prog, 1)
	assert.Equal(t, "starting", prog[0].Message)

	_, _, err = readResult(`{"message_type":"error","code":"rolled_back","message":"boom"}` + "\n")
	var e *control.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "boom", e.Message)

	_, _, err = readResult(`{"message_type":"progress"}` + "\n")
	require.ErrorContains(t, err, "without a result")

	_, _, err = readResult("not json\n")
	require.ErrorContains(t, err, "decode message")

	_, _, err = readResult(`{"message_type":"progress","message":"` + strings.Repeat("x", control.MaxFrame) + `"}` + "\n")
	require.ErrorContains(t, err, "longer than")
}

// FuzzReadStream: whatever the parent (or something posing as it) sends,
// the decoder neither panics nor reports success without a result message.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte(`{"message_type":"result","id":"s1","ok":true}` + "\n"))
	f.Add([]byte(`{"message_type":"progress","phase":"starting","elapsed_ns":5}` + "\n" + `{"message_type":"error","code":"x","message":"m","journal":["a"]}`))
	f.Add([]byte(`{"message_type":"progress","phase":"nope"}`))
	f.Add([]byte("{}\n\n{\"message_type\":\"result\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		decoded := false
		err := control.ReadStream(bytes.NewReader(in), control.TypeResult, func(control.Progress) {},
			func(b []byte) error { decoded = true; var r control.Result; return json.Unmarshal(b, &r) })
		if err == nil && !decoded {
			t.Fatalf("success without a result message for %q", in)
		}
	})
}
