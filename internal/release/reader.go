package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
)

const progressEvery = 1 << 20

// source reads the compressed tarball: it hashes and counts what it hands
// out, reports progress, and stops with ctx's error once ctx is done.
type source struct {
	ctx      context.Context
	r        io.Reader
	h        hash.Hash
	n        int64
	reported int64
	progress func(int64)
	err      error // first error other than io.EOF; returned by all later reads
}

func newSource(ctx context.Context, r io.Reader, progress func(int64)) *source {
	return &source{ctx: ctx, r: r, h: sha256.New(), progress: progress}
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if s.progress != nil && (s.n-s.reported >= progressEvery || (err == io.EOF && s.n != s.reported)) {
		s.reported = s.n
		s.progress(s.n)
	}
	if err != nil && err != io.EOF {
		s.err = fmt.Errorf("read tarball: %w", err)
		return n, s.err
	}
	return n, err
}

// sum returns the hex sha256 of everything read so far.
func (s *source) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// inflated counts decompressed bytes and enforces the compression ratio
// against the compressed bytes src has handed out.
type inflated struct {
	r     io.Reader
	src   *source
	n     int64
	ratio int64
	err   error // the limit error, once exceeded
}

func (f *inflated) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	c := max(f.src.n, 1)
	if f.n > RatioCheckAfter && c <= math.MaxInt64/f.ratio && f.n > f.ratio*c {
		f.err = fmt.Errorf("%w: compression ratio %d exceeds %d (%d bytes from %d)",
			ErrLimit, f.n/c, f.ratio, f.n, c)
		return n, f.err
	}
	return n, err
}

// errReader remembers the first error other than io.EOF it passes on, so
// that read and write errors of an io.Copy can be told apart.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}
