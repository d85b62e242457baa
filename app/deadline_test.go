package app

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRequestContext(t *testing.T) {
	ctx := newRequestContext(50 * time.Millisecond)
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 50*time.Millisecond {
		t.Errorf("Deadline = %v, %v", d, ok)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done never closed after the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
	ctx.stop()

	// A context derived from it ends with it.
	parent := newRequestContext(time.Hour)
	child, cancel := context.WithCancel(parent)
	defer cancel()
	parent.stop()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context outlived the request")
	}

	// Ended before anything waited on it: Done is closed at once.
	unused := newRequestContext(time.Hour)
	unused.stop()
	select {
	case <-unused.Done():
	default:
		t.Fatal("a stopped context is not done")
	}
	if unused.Err() == nil {
		t.Error("a stopped context has no error")
	}
}
