package backend

import (
	"context"
	"errors"
	"testing"
)

// liveInstance removes itself from its set when destroyed, as a driver's instance does.
type liveInstance struct {
	id        string
	set       *Live
	destroyed int
	err       error
}

func (i *liveInstance) ID() string { return i.id }
func (i *liveInstance) Init(context.Context, InitRequest) (Result, error) {
	return Result{}, ErrUnsupported
}
func (i *liveInstance) Run(context.Context, RunRequest) (Result, error) {
	return Result{}, ErrUnsupported
}
func (i *liveInstance) Destroy(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	i.destroyed++
	i.set.Remove(i)
	return i.err
}

func TestLiveCloseDestroysWhatIsLeft(t *testing.T) {
	var l Live
	boom := errors.New("boom")
	a := &liveInstance{id: "a", set: &l}
	b := &liveInstance{id: "b", set: &l, err: boom}
	gone := &liveInstance{id: "gone", set: &l}
	for _, in := range []*liveInstance{a, b, gone} {
		if !l.Add(in) {
			t.Fatalf("Add(%s) on an open set = false", in.id)
		}
	}
	if err := gone.Destroy(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Closed() {
		t.Fatal("Closed() before Close = true")
	}
	errs := l.Close()
	if len(errs) != 2 || !errors.Is(errors.Join(errs...), boom) {
		t.Fatalf("Close errors = %v, want two, one of them boom", errs)
	}
	if a.destroyed != 1 || b.destroyed != 1 || gone.destroyed != 1 {
		t.Fatalf("destroy counts a=%d b=%d gone=%d, want 1 each", a.destroyed, b.destroyed, gone.destroyed)
	}
	if !l.Closed() {
		t.Fatal("Closed() after Close = false")
	}
	late := &liveInstance{id: "late", set: &l}
	if l.Add(late) {
		t.Fatal("Add after Close = true: Close would never destroy it")
	}
	if errs := l.Close(); len(errs) != 0 {
		t.Fatalf("second Close errors = %v, want none (the set is empty)", errs)
	}
}
