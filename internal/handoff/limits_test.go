package handoff_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/beamdeploy/beamdeploy/internal/handoff"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInvalidKeys(t *testing.T) {
	tests := []struct {
		name, key string
		alsoLimit bool
	}{
		{"empty", "", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\n", false},
		{"del", "a\x7f", false},
		{"non-ASCII", "café", false},
		{"NUL", "a\x00", false},
		{"too long", strings.Repeat("k", 9), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, handoff.Limits{MaxKeyLen: 8})
			err := s.Put(tt.key, []byte("v"))
			require.ErrorIs(t, err, handoff.ErrInvalidKey)
			assert.Equal(t, tt.alsoLimit, errors.Is(err, handoff.ErrLimit))
			assert.Empty(t, s.Keys())
		})
	}
	t.Run("rule in message", func(t *testing.T) {
		s, _ := openTemp(t, handoff.Limits{})
		err := s.Put("a b", nil)
		require.ErrorIs(t, err, handoff.ErrInvalidKey)
		assert.Contains(t, err.Error(), "1 to 256 bytes of printable ASCII without spaces")
	})
	t.Run("edges accepted", func(t *testing.T) {
		s, _ := openTemp(t, handoff.Limits{MaxKeyLen: 8})
		require.NoError(t, s.Put("!", nil))
		require.NoError(t, s.Put("~~~~~~~~", nil))
	})
}

func TestLimits(t *testing.T) {
	limits := handoff.Limits{MaxKeys: 2, MaxValueLen: 10, MaxTotal: 19}
	tests := []struct {
		name    string
		prepare map[string]string
		key     string
		value   string
		msg     string
	}{
		{"value too long", nil, "k", "12345678901",
			"value of 11 bytes is over the 10-byte limit"},
		{"too many keys", map[string]string{"a": "", "b": ""}, "c", "",
			"store already holds 2 keys"},
		{"total too large", map[string]string{"a": "123456789"}, "b", "123456789",
			"store of 20 bytes would be over the 19-byte total limit"},
		{"total grown by replacing", map[string]string{"a": "12345678", "b": "12345678"}, "a", "1234567890",
			"store of 20 bytes would be over the 19-byte total limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTemp(t, limits)
			for k, v := range tt.prepare {
				require.NoError(t, s.Put(k, []byte(v)))
			}
			before := s.List()
			err := s.Put(tt.key, []byte(tt.value))
			require.ErrorIs(t, err, handoff.ErrLimit)
			assert.Contains(t, err.Error(), tt.msg)
			assert.Equal(t, before, s.List())
		})
	}
}

func TestLimitsAllowAtTheEdge(t *testing.T) {
	s, _ := openTemp(t, handoff.Limits{MaxKeys: 2, MaxValueLen: 10, MaxTotal: 20})
	require.NoError(t, s.Put("a", []byte("123456789")))
	require.NoError(t, s.Put("b", []byte("123456789"))) // total exactly 20
	require.NoError(t, s.Put("b", []byte("12")), "replacing an existing key adds no key")
	require.NoError(t, s.Delete("a"))
	require.NoError(t, s.Put("c", nil), "deleting frees a key slot")
}

func TestDefaultLimits(t *testing.T) {
	s, _ := openTemp(t, handoff.Limits{})
	require.NoError(t, s.Put("k", make([]byte, handoff.DefaultMaxValueLen)))
	err := s.Put("k", make([]byte, handoff.DefaultMaxValueLen+1))
	require.ErrorIs(t, err, handoff.ErrLimit)
	assert.Contains(t, err.Error(), "value of 65537 bytes is over the 65536-byte limit")
	require.NoError(t, s.Put(strings.Repeat("k", handoff.DefaultMaxKeyLen), nil))
	require.ErrorIs(t, s.Put(strings.Repeat("k", handoff.DefaultMaxKeyLen+1), nil), handoff.ErrInvalidKey)
}

func TestShrinkingPutAllowedWhenOverTotal(t *testing.T) {
	s, path := openTemp(t, handoff.Limits{})
	require.NoError(t, s.Put("a", make([]byte, 100)))
	// Reopen with a total below what the file already holds.
	s, err := handoff.Open(path, handoff.Limits{MaxTotal: 50})
	require.NoError(t, err)
	require.ErrorIs(t, s.Put("a", make([]byte, 101)), handoff.ErrLimit)
	require.NoError(t, s.Put("a", make([]byte, 60)), "shrinking is allowed")
}
