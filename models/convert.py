#!/usr/bin/env python3
"""Convert MediaPipe Holistic's TFLite models to ONNX for signtop (tract-onnx).

Pinned environment (CPython 3.11; also in models/requirements-convert.txt):
    tensorflow-cpu==2.15.1   (tf.lite.Interpreter, the reference; needed by tf2onnx)
    tf2onnx==1.17.0          (TFLite -> ONNX, opset 13)
    onnx==1.17.0             (pruning, renaming, checking)
    onnxruntime==1.20.1      (ONNX reference run)
    numpy==1.26.4
    pillow==10.4.0           (reading the check frames)
Models come from the PyPI wheel mediapipe==0.10.14 (downloaded with pip, --no-deps,
never installed), licensed Apache-2.0 (models/LICENSE-mediapipe).

Reproduce (from the repository root):
    python3.11 -m venv /tmp/venv-convert
    /tmp/venv-convert/bin/pip install -r models/requirements-convert.txt
    /tmp/venv-convert/bin/python models/convert.py

What it does:
  1. `pip download mediapipe==0.10.14` (manylinux x86_64, cp311 wheel) into a work
     folder (default /tmp/signtop-convert) and takes the .tflite files out of it.
  2. Rewrites sparse (DENSIFY) weights as dense constants where a model has them
     (pose_detection.tflite does; tf2onnx cannot read sparse tensors), checking the
     decoded weights against the TFLite interpreter's own DENSIFY output.
  3. Converts each model with tf2onnx (opset 13, NHWC float32 input kept), gives the
     input and outputs descriptive names, prunes outputs signtop does not use (pose
     segmentation) together with the nodes only they needed, stores weights that
     float16 holds exactly as float16 + Cast (the TFLite files keep them as float16),
     renames nodes canonically so the bytes are reproducible, and runs onnx's checker.
  4. Compares ONNX (onnxruntime) against TFLite (tf.lite.Interpreter, default
     XNNPACK delegate, as MediaPipe runs it) on real frames cut from
     ../shared/media/*.gif (crops placed with MediaPipe's reference keypoints for
     those clips) and prints the max abs difference per output.
  5. Writes the check inputs and the onnxruntime and TFLite outputs (raw
     little-endian f32 + manifest.json) into WORK/check/ so that another runtime
     (tract) can be compared to them.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

MEDIAPIPE_VERSION = "0.10.14"
# sha256 of mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
OPSET = 13

# name -> (path in the wheel, input H=W, input value range, outputs)
# outputs: list of (TFLite output name, ONNX output name) in the ONNX output order;
# TFLite outputs not listed are pruned.
MODELS = {
    "pose_detection": dict(
        path="mediapipe/modules/pose_detection/pose_detection.tflite",
        size=224, range=(-1.0, 1.0),
        outputs=[("Identity", "regressors"), ("Identity_1", "classificators")],
    ),
    "pose_landmark_full": dict(
        path="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        size=256, range=(0.0, 1.0),
        # Identity_2 is the 256x256x1 segmentation mask: pruned.
        outputs=[("Identity", "landmarks"), ("Identity_1", "pose_flag"),
                 ("Identity_3", "heatmap"), ("Identity_4", "world_landmarks")],
    ),
    "hand_recrop": dict(
        path="mediapipe/modules/holistic_landmark/hand_recrop.tflite",
        size=256, range=(0.0, 1.0),
        outputs=[("output_crop", "output_crop")],
    ),
    "hand_landmark_full": dict(
        path="mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        size=224, range=(0.0, 1.0),
        outputs=[("Identity", "landmarks"), ("Identity_1", "hand_flag"),
                 ("Identity_2", "handedness"), ("Identity_3", "world_landmarks")],
    ),
    "face_detection_short_range": dict(
        path="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        size=128, range=(-1.0, 1.0),
        outputs=[("regressors", "regressors"), ("classificators", "classificators")],
    ),
    "face_landmark": dict(
        path="mediapipe/modules/face_landmark/face_landmark.tflite",
        size=192, range=(0.0, 1.0),
        outputs=[("conv2d_21", "landmarks"), ("conv2d_31", "face_flag")],
    ),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- 1. the wheel
def get_wheel(work, wheel=None):
    if wheel:
        return wheel
    dl = os.path.join(work, "wheel")
    os.makedirs(dl, exist_ok=True)
    name = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    path = os.path.join(dl, name)
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}",
                        "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                        "--implementation", "cp", "--platform", "manylinux_2_17_x86_64",
                        "--platform", "manylinux2014_x86_64", "-d", dl], check=True)
    return path


def extract_tflite(wheel, work):
    out = os.path.join(work, "tflite")
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name, m in MODELS.items():
            with open(os.path.join(out, name + ".tflite"), "wb") as f:
                f.write(z.read(m["path"]))
        with open(os.path.join(work, "LICENSE-mediapipe-wheel"), "wb") as f:
            f.write(z.read(f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"))
    return out


# ---------------------------------------------------------------- 2. densify
def _decode_sparse(values, shape, sp):
    """Dense array from a TFLite sparse tensor (TACO-style: traversal order,
    optional block map, per-level DENSE or SPARSE_CSR metadata)."""
    from tensorflow.lite.python import schema_py_generated as S
    rank = len(shape)
    order = list(sp.traversalOrder)
    block_map = list(sp.blockMap) if sp.blockMap is not None else []
    meta = sp.dimMetadata
    block_size = {}
    for j, d in enumerate(block_map):
        block_size[d] = meta[order.index(rank + j)].denseSize
    dense = np.zeros(shape, values.dtype)
    exp_coord = [0] * len(order)

    def vec(v):
        return None if v is None else np.asarray(v.values)

    def walk(level, pos):
        md = meta[level]
        dim = order[level]
        if md.format == S.DimensionType.DENSE:
            items = [(i, pos * md.denseSize + i) for i in range(md.denseSize)]
        else:
            seg, idx = vec(md.arraySegments), vec(md.arrayIndices)
            items = [(int(idx[j]), j) for j in range(int(seg[pos]), int(seg[pos + 1]))]
        for i, child in items:
            exp_coord[dim] = i
            if level + 1 == len(order):
                coord = []
                for k in range(rank):
                    c = exp_coord[k]
                    if k in block_size:
                        c = c * block_size[k] + exp_coord[rank + block_map.index(k)]
                    coord.append(c)
                dense[tuple(coord)] = values[child]
            else:
                walk(level + 1, child)

    walk(0, 0)
    return dense


def densify(src, dst):
    """Write a copy of src without DENSIFY ops. Returns the number rewritten."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as S
    buf = open(src, "rb").read()
    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(buf, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    np_type = {S.TensorType.FLOAT16: np.float16, S.TensorType.FLOAT32: np.float32,
               S.TensorType.INT8: np.int8}
    todo = []
    for gi, g in enumerate(model.subgraphs):
        keep = []
        for op in g.operators:
            if codes[op.opcodeIndex] == S.BuiltinOperator.DENSIFY:
                todo.append((gi, op.inputs[0], op.outputs[0]))
            else:
                keep.append(op)
        g.operators = keep
    if not todo:
        return 0
    # TFLite's own densified weights, to check the decoder against.
    it = tf.lite.Interpreter(
        model_path=src, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
    for gi, ti, to in todo:
        g = model.subgraphs[gi]
        t_in, t_out = g.tensors[ti], g.tensors[to]
        dt = np_type[t_in.type]
        raw = np.frombuffer(bytes(bytearray(model.buffers[t_in.buffer].data)), dt)
        dense = _decode_sparse(raw, list(t_out.shape), t_in.sparsity)
        if gi == 0:
            ref = it.get_tensor(to)
            if not np.array_equal(ref.astype(np.float32), dense.astype(np.float32)):
                raise SystemExit(f"densify: decoded tensor {ti} differs from TFLite's DENSIFY output")
        b = S.BufferT()
        b.data = np.frombuffer(dense.astype(dt).tobytes(), np.uint8)
        model.buffers.append(b)
        t_out.buffer = len(model.buffers) - 1
        # The sparse source tensor is now unused; make it a plain dense constant
        # too, so nothing that lists tensors trips over its sparsity.
        t_in.sparsity = None
        t_in.shape = list(t_out.shape)
        t_in.buffer = t_out.buffer
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(dst, "wb") as f:
        f.write(builder.Output())
    return len(todo)


# ---------------------------------------------------------------- 3. convert
# The TFLite models keep most weights as float16 (DEQUANTIZE to float32 at load);
# tf2onnx folds them to float32, doubling the file. Storing every float32
# initializer that float16 holds exactly as float16 + a Cast back to float32 keeps
# the ONNX files about the size of the TFLite ones and changes no value: the
# round trip is checked to be exact, and tract and onnxruntime fold the Cast at load.
FP16_WEIGHTS = True


def canonicalize(model):
    """Make the file byte-for-byte reproducible. tf2onnx's node order and its
    generated names (counters such as pad_const__2326) change from run to run, so
    nodes are put in a topological order that depends only on the graph's
    structure, and every node, intermediate tensor and initializer is renamed by
    its place in that order. Graph input and output names are kept."""
    import onnx
    from onnx import helper, shape_inference
    g = model.graph
    io_names = {v.name for v in g.input} | {v.name for v in g.output}
    inits = {t.name: t for t in g.initializer}
    producer = {}
    for n in g.node:
        for o in n.output:
            producer[o] = n
    memo = {}

    def key(name):  # structural hash of a tensor, independent of names
        if name in memo:
            return memo[name]
        if name == "":
            h = "none"
        elif name in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[name])
            t.name = ""
            h = hashlib.sha256(t.SerializeToString()).hexdigest()
        elif name in producer:
            n = producer[name]
            attrs = b"".join(a.SerializeToString() for a in sorted(n.attribute, key=lambda a: a.name))
            h = hashlib.sha256(b"|".join([n.op_type.encode(), n.domain.encode(), attrs]
                                         + [key(i).encode() for i in n.input]
                                         + [str(list(n.output).index(name)).encode()])).hexdigest()
        else:
            h = hashlib.sha256(("graph-input:" + name).encode()).hexdigest()
        memo[name] = h
        return h

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    nkey = {id(n): key(n.output[0]) for n in g.node}
    # Kahn's algorithm, ties broken by the structural hash.
    avail = set(inits) | {v.name for v in g.input} | {""}
    pending = list(g.node)
    order = []
    while pending:
        ready = [n for n in pending if all(i in avail for i in n.input)]
        if not ready:
            raise SystemExit("canonicalize: graph is not a DAG")
        n = min(ready, key=lambda n: nkey[id(n)])
        order.append(n)
        pending.remove(n)
        avail.update(n.output)
    rename = {}
    for idx, n in enumerate(order):
        for j, i in enumerate(n.input):
            if i in inits and i not in rename and i not in io_names:
                rename[i] = f"w{idx:04d}_{n.op_type}_{j}"
        for k, o in enumerate(n.output):
            if o not in io_names:
                rename[o] = f"t{idx:04d}_{n.op_type}" + (f"_{k}" if k else "")
        n.name = f"n{idx:04d}_{n.op_type}"
    for n in order:
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename.get(o, o) for o in n.output]
    new_inits = []
    for t in g.initializer:
        t.name = rename.get(t.name, t.name)
        new_inits.append(t)
    new_inits.sort(key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.node[:]
    g.node.extend(order)
    del g.value_info[:]
    g.name = "main"
    inferred = shape_inference.infer_shapes(model)
    del g.value_info[:]
    g.value_info.extend(inferred.graph.value_info)


def store_weights_as_fp16(model):
    import onnx
    from onnx import numpy_helper, TensorProto, helper
    g = model.graph
    keep, casts, n = [], [], 0
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            a = numpy_helper.to_array(t)
            h = a.astype(np.float16)
            if a.size >= 16 and np.array_equal(h.astype(np.float32), a):
                keep.append(numpy_helper.from_array(h, t.name + "_fp16"))
                casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name],
                                              name=t.name + "_to_fp32", to=TensorProto.FLOAT))
                n += 1
                continue
        keep.append(t)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return n

def convert(name, tflite, out_path, tmp):
    import onnx
    import tf2onnx
    from onnx import utils as onnx_utils
    m = MODELS[name]
    src = tflite
    dense = os.path.join(tmp, name + ".dense.tflite")
    n = densify(tflite, dense)
    if n:
        print(f"  {name}: rewrote {n} sparse (DENSIFY) weight tensors as dense constants")
        src = dense
    raw = os.path.join(tmp, name + ".raw.onnx")
    tf2onnx.convert.from_tflite(src, opset=OPSET, output_path=raw)
    model = onnx.load(raw)
    g = model.graph
    # Rename the input and outputs.
    renames = {g.input[0].name: "input"}
    for tfl, onx in m["outputs"]:
        renames[tfl] = onx
    for node in g.node:
        node.input[:] = [renames.get(x, x) for x in node.input]
        node.output[:] = [renames.get(x, x) for x in node.output]
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.name = renames.get(v.name, v.name)
    nodes_before = len(g.node)
    onnx.save(model, raw)
    # Prune: keep only the listed outputs, in the listed order; nodes that only fed
    # the dropped outputs go with them.
    onnx_utils.extract_model(raw, out_path, ["input"], [o for _, o in m["outputs"]])
    model = onnx.load(out_path)
    pruned = nodes_before - len(model.graph.node)
    # extract_model keeps the opset imports; drop the unused ai.onnx.ml domain.
    used = {n.domain for n in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    model.producer_name = "signtop models/convert.py (tf2onnx 1.17.0)"
    model.doc_string = (f"MediaPipe {m['path']} from mediapipe=={MEDIAPIPE_VERSION} (Apache-2.0), "
                        f"converted by signtop models/convert.py")
    del model.metadata_props[:]
    for k, v in [("source", f"pypi:mediapipe=={MEDIAPIPE_VERSION}:{m['path']}"),
                 ("source_sha256", sha256(tflite)), ("license", "Apache-2.0"),
                 ("input_layout", "NHWC"),
                 ("input_range", f"[{m['range'][0]:g}, {m['range'][1]:g}]")]:
        p = model.metadata_props.add()
        p.key, p.value = k, v
    if FP16_WEIGHTS:
        store_weights_as_fp16(model)
    canonicalize(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out_path)
    return pruned


# ---------------------------------------------------------------- 4. check
def _frames(gif):
    from PIL import Image, ImageSequence
    return [fr.convert("RGB") for fr in ImageSequence.Iterator(Image.open(gif))]


def _crop(img, cx, cy, side, size, rng):
    """Axis-aligned square crop centred on (cx, cy) px, side px, zero outside,
    resized to size x size, scaled to rng (MediaPipe ImageToTensor style)."""
    from PIL import Image
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    c = img.transform((size, size), Image.EXTENT, box, Image.BILINEAR, fillcolor=(0, 0, 0))
    a = np.asarray(c, np.float32)
    lo, hi = rng
    return (a * ((hi - lo) / 255.0) + lo)[None]


def _letterbox(img, size, rng):
    w, h = img.size
    side = max(w, h)
    return _crop(img, w / 2, h / 2, side, size, rng)


def check_inputs(media):
    """Per model, a list of (label, NHWC input) cut from the shared clips, placed
    with MediaPipe's reference keypoints for those clips."""
    cases = {k: [] for k in MODELS}
    for clip in ("cow_correct", "butterfly_inference"):
        frames = _frames(os.path.join(media, clip + ".gif"))
        ref = np.load(os.path.join(media, "reference", clip + "_1662.npy"))
        for fi in range(0, len(frames), 4):
            img = frames[fi]
            w, h = img.size
            lab = f"{clip}#{fi}"
            k = ref[fi]
            pose = k[:132].reshape(33, 4)
            face = k[132:1536].reshape(468, 3)
            hands = [k[1536:1599].reshape(21, 3), k[1599:1662].reshape(21, 3)]
            cases["pose_detection"].append((lab, _letterbox(img, 224, MODELS["pose_detection"]["range"])))
            if pose.any():
                xs, ys = pose[:, 0] * w, pose[:, 1] * h
                x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
                side = max(x1 - x0, y1 - y0) * 1.25
                cases["pose_landmark_full"].append(
                    (lab, _crop(img, (x0 + x1) / 2, (y0 + y1) / 2, side, 256, (0.0, 1.0))))
            else:
                cases["pose_landmark_full"].append((lab, _letterbox(img, 256, (0.0, 1.0))))
            for side_i, hand in enumerate(hands):
                if hand.any():
                    xs, ys = hand[:, 0] * w, hand[:, 1] * h
                    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
                    side = max(xs.max() - xs.min(), ys.max() - ys.min())
                elif pose.any():
                    wrist = pose[15 + side_i, :2] * (w, h)  # 15 left wrist, 16 right wrist
                    index = pose[19 + side_i, :2] * (w, h)
                    cx, cy = (wrist + index) / 2
                    side = np.linalg.norm(index - wrist) * 4
                else:
                    continue
                side = max(side, 8.0)
                cases["hand_landmark_full"].append(
                    (f"{lab}/{'lr'[side_i]}", _crop(img, cx, cy, side * 2.0, 224, (0.0, 1.0))))
                cases["hand_recrop"].append(
                    (f"{lab}/{'lr'[side_i]}", _crop(img, cx, cy, side * 2.7, 256, (0.0, 1.0))))
            if face.any():
                xs, ys = face[:, 0] * w, face[:, 1] * h
                cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
                side = max(xs.max() - xs.min(), ys.max() - ys.min())
            elif pose.any():
                pts = pose[:11, :2] * (w, h)  # face points of the pose model
                cx, cy = pts.mean(0)
                side = np.ptp(pts[:, 0]) * 1.5
            else:
                continue
            cases["face_landmark"].append((lab, _crop(img, cx, cy, side * 1.5, 192, (0.0, 1.0))))
            cases["face_detection_short_range"].append(
                (lab, _crop(img, cx, cy, side * 3.0, 128, (-1.0, 1.0))))
    return cases


def run_checks(onnx_dir, tfl_dir, media, check_dir):
    import onnxruntime as ort
    import tensorflow as tf
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    cases = check_inputs(media)
    report = {}
    manifest = {}
    for name, m in MODELS.items():
        sess = ort.InferenceSession(os.path.join(onnx_dir, name + ".onnx"), so,
                                    providers=["CPUExecutionProvider"])
        it = tf.lite.Interpreter(model_path=os.path.join(tfl_dir, name + ".tflite"), num_threads=2)
        it.allocate_tensors()
        tin = it.get_input_details()[0]["index"]
        touts = {d["name"]: d["index"] for d in it.get_output_details()}
        onames = [o.name for o in sess.get_outputs()]
        stats = {o: [0.0, 0.0] for _, o in m["outputs"]}  # max abs diff, max abs value
        mdir = os.path.join(check_dir, name)
        os.makedirs(mdir, exist_ok=True)
        mcases = []
        for ci, (lab, x) in enumerate(cases[name]):
            x = np.ascontiguousarray(x, np.float32)
            it.set_tensor(tin, x)
            it.invoke()
            got = dict(zip(onames, sess.run(None, {"input": x})))
            x.tofile(os.path.join(mdir, f"{ci:03d}_input.f32"))
            outs = []
            for tfl, onx in m["outputs"]:
                ref = it.get_tensor(touts[tfl])
                o = got[onx]
                assert o.shape == ref.shape, (name, onx, o.shape, ref.shape)
                d = float(np.abs(o - ref).max())
                stats[onx][0] = max(stats[onx][0], d)
                stats[onx][1] = max(stats[onx][1], float(np.abs(ref).max()))
                o.astype(np.float32).tofile(os.path.join(mdir, f"{ci:03d}_{onx}.f32"))
                ref.astype(np.float32).tofile(os.path.join(mdir, f"{ci:03d}_{onx}.tflite.f32"))
                outs.append({"name": onx, "shape": list(o.shape), "file": f"{ci:03d}_{onx}.f32",
                             "tflite_file": f"{ci:03d}_{onx}.tflite.f32"})
            mcases.append({"label": lab, "input": f"{ci:03d}_input.f32", "outputs": outs})
        manifest[name] = {"onnx": os.path.join(onnx_dir, name + ".onnx"),
                          "input_shape": [1, m["size"], m["size"], 3], "dir": mdir, "cases": mcases}
        report[name] = {"frames": len(cases[name]),
                        "outputs": {o: {"shape": list(sess.get_outputs()[i].shape),
                                        "max_abs_diff": stats[o][0], "max_abs_value": stats[o][1]}
                                    for i, o in enumerate(onames)}}
    with open(os.path.join(check_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/signtop-convert", help="scratch folder (wheel, tflite, checks)")
    ap.add_argument("--wheel", help="an already downloaded mediapipe-0.10.14 wheel")
    ap.add_argument("--out", default=HERE, help="where the .onnx files go (default: models/)")
    ap.add_argument("--media", default=os.path.join(REPO, "..", "shared", "media"),
                    help="folder with cow_correct.gif, butterfly_inference.gif and reference/")
    ap.add_argument("--no-check", action="store_true", help="convert only")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.work, "tmp")
    os.makedirs(tmp, exist_ok=True)
    wheel = get_wheel(a.work, a.wheel)
    wsha = sha256(wheel)
    print(f"wheel {os.path.basename(wheel)} sha256 {wsha}")
    if wsha != WHEEL_SHA256:
        print(f"WARNING: expected the wheel with sha256 {WHEEL_SHA256}; the models may differ "
              "from the committed ones (their .tflite sha256 are in models/README.md)")
    tfl_dir = extract_tflite(wheel, a.work)
    cards = {}
    for name, m in MODELS.items():
        t = os.path.join(tfl_dir, name + ".tflite")
        o = os.path.join(a.out, name + ".onnx")
        pruned = convert(name, t, o, tmp)
        cards[name] = {"wheel_path": m["path"], "tflite_sha256": sha256(t), "tflite_bytes": os.path.getsize(t),
                       "onnx_sha256": sha256(o), "onnx_bytes": os.path.getsize(o), "pruned_nodes": pruned}
        print(f"  {name}: {os.path.getsize(t)} B tflite -> {os.path.getsize(o)} B onnx, "
              f"{pruned} nodes pruned")
    if not a.no_check:
        report = run_checks(a.out, tfl_dir, a.media, os.path.join(a.work, "check"))
        print()
        print(f"{'model':28} {'output':16} {'shape':18} {'frames':>6} {'max|onnx-tflite|':>17} {'max|tflite|':>12}")
        for name, r in report.items():
            cards[name]["check"] = r
            for o, s in r["outputs"].items():
                print(f"{name:28} {o:16} {str(s['shape']):18} {r['frames']:6d} "
                      f"{s['max_abs_diff']:17.3e} {s['max_abs_value']:12.4g}")
    with open(os.path.join(a.work, "report.json"), "w") as f:
        json.dump(cards, f, indent=1)
    print(f"\nreport: {os.path.join(a.work, 'report.json')}; tract check data: {os.path.join(a.work, 'check')}")


if __name__ == "__main__":
    main()
