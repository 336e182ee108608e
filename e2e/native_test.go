package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

	_ "github.com/snapinvoker/snapinvoker/backend/unikernel" // the KVM driver, first for blackbox kinds

	"github.com/snapinvoker/snapinvoker/e2e/owclient"
	"github.com/snapinvoker/snapinvoker/internal/testprog"
)

// nativeEcho builds the shared actionloop echo program (internal/testprog, the copy of
// /work/shared/testdata/actions/native/echo.c) statically and returns it base64-encoded, as
// `wsk action create --native` uploads it.
func nativeEcho(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(testprog.Build(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// requireKVM fails (never skips) when the unikernel driver cannot run here.
func requireKVM(t testing.TB, in *instance) {
	t.Helper()
	for _, d := range in.Drivers {
		if d.Name == "unikernel" {
			if d.Err != nil {
				t.Fatalf("the unikernel driver cannot run on this host: %v", d.Err)
			}
			return
		}
	}
	t.Fatal("the unikernel driver is not registered")
}

// TestNativeActionRunsAsAGuest: a static actionloop binary, created the way
// `wsk action create --native` does, runs through the invoker on the unikernel driver.
func TestNativeActionRunsAsAGuest(t *testing.T) {
	in := startTWith(t, true)
	requireKVM(t, in)
	ctx := ctxT(t)
	code := nativeEcho(t)
	a, err := in.guest.PutAction(ctx, "native", owclient.Action{Exec: &owclient.Exec{Kind: "blackbox", Image: "openwhisk/dockerskeleton", Code: &code}}, false)
	if err != nil || a.Exec.Binary == nil || !*a.Exec.Binary {
		t.Fatalf("create: %+v %v", a, err)
	}
	for i := 0; i < 3; i++ {
		inv, err := in.guest.Invoke(ctx, "native", map[string]any{"n": i}, owclient.InvokeOptions{Blocking: true, Result: true})
		if err != nil || inv.Status != 200 {
			t.Fatalf("invoke %d: %v %v", i, inv, err)
		}
		var res struct {
			Echo struct {
				Value        map[string]any `json:"value"`
				Namespace    string         `json:"namespace"`
				ActivationID string         `json:"activation_id"`
			} `json:"echo"`
		}
		if err := json.Unmarshal(inv.Body, &res); err != nil || res.Echo.Value["n"] != float64(i) ||
			res.Echo.Namespace != "guest" || res.Echo.ActivationID != inv.ActivationID {
			t.Fatalf("invoke %d: result %s", i, inv.Body)
		}
	}
	id := ""
	inv, _ := in.guest.Invoke(context.Background(), "native", nil, owclient.InvokeOptions{})
	if inv != nil {
		id = inv.ActivationID
	}
	rec, err := in.guest.WaitActivation(ctx, id)
	if err != nil || !rec.Response.Success {
		t.Fatalf("non-blocking record: %+v %v", rec, err)
	}
}
