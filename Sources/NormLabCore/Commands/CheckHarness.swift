/// The Python side of `check`: loads the user's module, then for each request line {"dir", "dtype", "groups",
/// "eps"} loads x, γ, β, dy from .npy files in `dir`, calls forward and backward, saves y, dx, dγ, dβ beside
/// them and answers with one JSON line. The user's own prints go to standard error (not the protocol); an
/// exception is answered with its traceback, and the loop goes on.
enum CheckHarness {
    static let source = #"""
import sys, os, json, traceback, importlib.util

protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

def user_traceback():
    # The user's frames only: the first frame is this harness calling their function.
    kind, value, tb = sys.exc_info()
    return "".join(traceback.format_exception(kind, value, tb.tb_next if tb is not None else None))

def reply(**answer):
    protocol.write(json.dumps(answer) + "\n")
    protocol.flush()

try:
    import numpy as np
except BaseException:
    reply(ok=False, stage="numpy", message="NumPy is not installed for this python3 (pip install numpy)")
    sys.exit(0)

path, forward_name, backward_name = sys.argv[1:4]
try:
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location("normlab_checked_layer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
except BaseException:
    reply(ok=False, stage="load", traceback=traceback.format_exc())
    sys.exit(0)
missing = [name for name in (forward_name, backward_name) if not callable(getattr(module, name, None))]
if missing:
    reply(ok=False, stage="load", message="%s has no function %s" % (os.path.basename(path), " or ".join(missing)))
    sys.exit(0)
forward, backward = getattr(module, forward_name), getattr(module, backward_name)
reply(ok=True, stage="ready")

for line in sys.stdin:
    request = json.loads(line)
    folder = request["dir"]
    dtype = np.float32 if request["dtype"] == "float32" else np.float64
    def load(name):
        file = os.path.join(folder, name + ".npy")
        return np.load(file).astype(dtype) if os.path.exists(file) else None
    stage = "forward"
    try:
        x, gamma, beta, dy = load("x"), load("gamma"), load("beta"), load("dy")
        groups = request.get("groups")
        arguments = [x, gamma, beta] + ([groups] if groups is not None else []) + [request["eps"]]
        result = forward(*arguments)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError("forward must return (y, cache); it returned %s" % type(result).__name__)
        y, cache = result
        stage = "backward"
        grads = backward(dy, cache)
        if not (isinstance(grads, tuple) and len(grads) == 3):
            raise TypeError("backward must return (dx, dgamma, dbeta); it returned %s" % type(grads).__name__)
        stage = "results"
        shapes, dtypes = {}, {}
        for name, value in zip(("y", "dx", "dgamma", "dbeta"), (y,) + tuple(grads)):
            if value is None:
                continue
            array = np.asarray(value)
            if array.dtype.kind not in "fiu":
                raise TypeError("%s is an array of %s, not numbers" % (name, array.dtype))
            shapes[name] = list(array.shape)
            dtypes[name] = str(array.dtype)
            np.save(os.path.join(folder, "out_" + name + ".npy"), array.astype(np.float64))
        reply(ok=True, shapes=shapes, dtypes=dtypes)
    except BaseException:
        reply(ok=False, stage=stage, traceback=user_traceback())
"""#
}
