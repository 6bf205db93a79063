package parent

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStatusLine(t *testing.T) {
	assert.Contains(t, statusLine("hello", swapStatusFixture()), "serving hello 1.1.0 on hello@green.service (pid 42); last swap 0.42 s ok")
}
