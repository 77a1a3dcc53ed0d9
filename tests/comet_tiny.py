"""Build a tiny but real xCOMET checkpoint offline, then score three triples with it.

Why this exists: glotbench's xCOMET support runs ``comet.load_from_checkpoint`` and
``model.predict`` inside an isolated COMET virtualenv, and the tests have to exercise that path
end to end. The real model (Unbabel/XCOMET-XL, ~14 GB) cannot be downloaded by the tests, so
this script builds a stand-in that goes through exactly the same code: the real
``XCOMETMetric`` class of unbabel-comet (regression head, word-level error-span tagger, the
three-way [mt:src], [mt:ref], [mt:src:ref] inputs and the MQM-weighted final score) on top of a
tiny randomly initialised XLM-RoBERTa encoder (2 layers, hidden size 32) and a BPE
tokenizer trained here on a few dozen multilingual sentences. The scores are meaningless but
deterministic: a fixed seed and a deterministic trainer make two builds produce identical
tokenizers, weights and scores.

It runs with the COMET venv's Python and imports nothing from glotbench::

    /path/to/comet-venv/bin/python tests/comet_tiny.py OUT_DIR [--size tiny|large|xl]

It writes ``OUT_DIR/encoder/`` (XLMRobertaConfig + XLMRobertaTokenizerFast files),
``OUT_DIR/hparams.yaml`` and ``OUT_DIR/checkpoints/model.ckpt`` (the layout
``comet.load_from_checkpoint`` expects; ``pretrained_model`` is the absolute path of
``OUT_DIR/encoder``, so the directory must stay where it was built), reloads the checkpoint
with ``comet.load_from_checkpoint``, predicts three (src, mt, ref) triples on the CPU and prints
one JSON line to stdout: ``{"checkpoint", "triples", "scores", "system_score", "error_spans",
"seconds"}``. Everything else (warnings, Lightning's messages) goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# Never reach the Hugging Face hub: everything is built from local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEED = 1234
HIDDEN = 32
LAYERS = 2
VOCAB_SIZE = 600

# Training text for the tokenizer: several scripts, so that every test language has pieces.
CORPUS: list[str] = [
    "The cat sits on the mat and looks out of the window.",
    "I would like a cup of coffee with milk, please.",
    "The weather is nice today, so we are going for a walk in the park.",
    "Machine translation has improved a lot over the last ten years.",
    "Where is the nearest train station?",
    "She reads a book every week and writes short stories.",
    "Die Katze sitzt auf der Matte und schaut aus dem Fenster.",
    "Ich hätte gern eine Tasse Kaffee mit Milch, bitte.",
    "Das Wetter ist heute schön, also gehen wir im Park spazieren.",
    "Maschinelle Übersetzung hat sich in den letzten zehn Jahren stark verbessert.",
    "Wo ist der nächste Bahnhof?",
    "Sie liest jede Woche ein Buch und schreibt Kurzgeschichten.",
    "Le chat est assis sur le tapis et regarde par la fenêtre.",
    "Je voudrais une tasse de café au lait, s'il vous plaît.",
    "El gato está sentado en la alfombra y mira por la ventana.",
    "Me gustaría una taza de café con leche, por favor.",
    "猫坐在垫子上，看着窗外。",
    "我想要一杯加牛奶的咖啡。",
    "今天天气很好，所以我们去公园散步。",
    "机器翻译在过去十年里有了很大的进步。",
    "最近的火车站在哪里？",
    "她每周读一本书，还写短篇小说。",
    "القطة تجلس على السجادة وتنظر من النافذة.",
    "أريد فنجان قهوة بالحليب من فضلك.",
    "الطقس جميل اليوم، لذلك سنتمشى في الحديقة.",
    "تحسنت الترجمة الآلية كثيرا خلال السنوات العشر الماضية.",
    "أين أقرب محطة قطار؟",
    "Кошка сидит на коврике и смотрит в окно.",
    "Я бы хотел чашку кофе с молоком, пожалуйста.",
    "Сегодня хорошая погода, поэтому мы идём гулять в парк.",
    "Машинный перевод сильно улучшился за последние десять лет.",
    "Где ближайший вокзал?",
    "बिल्ली चटाई पर बैठी है और खिड़की से बाहर देख रही है।",
    "मुझे दूध वाली एक कप कॉफ़ी चाहिए।",
    "आज मौसम अच्छा है, इसलिए हम पार्क में टहलने जा रहे हैं।",
    "पिछले दस वर्षों में मशीनी अनुवाद में बहुत सुधार हुआ है।",
    "सबसे नज़दीकी रेलवे स्टेशन कहाँ है?",
    "猫はマットの上に座って窓の外を見ている。",
    "Paka ameketi juu ya mkeka na anaangalia nje ya dirisha.",
    "Numbers and symbols: 1, 2, 3, 10, 100, 2024, 3.14, 50%, (a) [b] - / : ; ! ?",
]

# The triples the script scores itself (the tests score the same ones through glotbench).
TRIPLES: list[dict[str, str]] = [
    {
        "src": "The cat sits on the mat.",
        "mt": "Die Katze sitzt auf der Matte.",
        "ref": "Die Katze sitzt auf der Matte.",
    },
    {
        "src": "我想要一杯加牛奶的咖啡。",
        "mt": "I want a coffee milk cup.",
        "ref": "I would like a cup of coffee with milk.",
    },
    {
        "src": "Где ближайший вокзал?",
        "mt": "निकटतम स्टेशन कहाँ है?",
        "ref": "सबसे नज़दीकी रेलवे स्टेशन कहाँ है?",
    },
]


def build_tokenizer(encoder_dir: Path) -> Any:
    """Train an XLM-R-style tokenizer on CORPUS and save it as an XLMRobertaTokenizerFast.

    XLM-R itself uses a SentencePiece Unigram model, but the ``tokenizers`` Unigram trainer is
    not deterministic (piece order and scores vary from run to run), which would make the
    scores vary too; its BPE trainer is, so the model is BPE with XLM-R's normalizer,
    pre-tokenizer (Metaspace "▁"), decoder, special tokens, ids and post-processor.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Strip(left=False, right=True),
            normalizers.Replace(Regex(" {2,}"), "▁"),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],  # ids 0..3, as in XLM-R
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",  # appended after the trained pieces, as in XLM-R
        model_max_length=512,
    )
    assert (fast.bos_token_id, fast.pad_token_id, fast.eos_token_id, fast.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    fast.save_pretrained(str(encoder_dir))
    return fast


# Encoder shapes. "tiny" is what the tests use; "large" (XLM-R large, 560M) and "xl" (XLM-R XL,
# 3.5B: the encoder of XCOMET-XL) are for bench/bench_xcomet.py, which times real-size models
# built from their configuration (random weights; the vocabulary size is the real one, the
# tokenizer only uses its first ids). The large sizes use COMET's default head sizes.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"encoder": "XLM-RoBERTa", "hidden": HIDDEN, "layers": LAYERS, "heads": 2,
             "intermediate": 64, "vocab": None, "head_sizes": [HIDDEN, HIDDEN // 2]},
    "large": {"encoder": "XLM-RoBERTa", "hidden": 1024, "layers": 24, "heads": 16,
              "intermediate": 4096, "vocab": 250002, "head_sizes": [3072, 1024]},
    "xl": {"encoder": "XLM-RoBERTa-XL", "hidden": 2560, "layers": 36, "heads": 32,
           "intermediate": 10240, "vocab": 250880, "head_sizes": [3072, 1024]},
}


def build_encoder(encoder_dir: Path, size: str = "tiny") -> None:
    """Tokenizer + XLM-R config of ``size`` in ``encoder_dir`` (COMET builds the weights)."""
    from transformers import XLMRobertaConfig, XLMRobertaXLConfig

    spec = SIZES[size]
    encoder_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(encoder_dir)
    config_class = XLMRobertaXLConfig if spec["encoder"] == "XLM-RoBERTa-XL" else XLMRobertaConfig
    config = config_class(
        vocab_size=spec["vocab"] or len(tokenizer),
        hidden_size=spec["hidden"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        intermediate_size=spec["intermediate"],
        max_position_embeddings=514,  # 512 tokens + XLM-R's padding offset of 2
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    config.save_pretrained(str(encoder_dir))


def build_checkpoint(out_dir: Path, size: str = "tiny") -> Path:
    """Random-weight XCOMETMetric saved as ``checkpoints/model.ckpt`` + ``hparams.yaml``."""
    import pytorch_lightning as ptl
    import torch
    import yaml
    from comet.models import XCOMETMetric

    spec = SIZES[size]
    encoder_dir = (out_dir / "encoder").resolve()
    build_encoder(encoder_dir, size)
    torch.manual_seed(SEED)
    model = XCOMETMetric(
        encoder_model=spec["encoder"],
        pretrained_model=str(encoder_dir),
        layer_transformation="sparsemax",
        word_layer=spec["layers"],  # last layer (COMET counts the embeddings as layer 0)
        hidden_sizes=spec["head_sizes"],
        load_pretrained_weights=False,
        local_files_only=True,
    )
    hparams = dict(model.hparams)
    ckpt = out_dir / "checkpoints" / "model.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    # What Lightning's load_from_checkpoint reads: the weights, the constructor arguments and
    # the Lightning version (its checkpoint migration looks the version up).
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": ptl.__version__,
            "epoch": 0,
            "global_step": 0,
        },
        ckpt,
    )
    with open(out_dir / "hparams.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(hparams, f, sort_keys=True)
    return ckpt


def score(ckpt: Path) -> dict[str, Any]:
    """Load the checkpoint the way glotbench does and predict TRIPLES on the CPU."""
    import torch
    from comet import load_from_checkpoint

    model = load_from_checkpoint(str(ckpt))
    assert type(model).__name__ == "XCOMETMetric", type(model)
    # strict=False in COMET: make sure every saved tensor really came back.
    saved = torch.load(str(ckpt), map_location="cpu", weights_only=True)["state_dict"]
    loaded = model.state_dict()
    assert saved.keys() == loaded.keys(), sorted(set(saved) ^ set(loaded))
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    out = model.predict(TRIPLES, batch_size=2, gpus=0, progress_bar=False)
    scores = [float(s) for s in out.scores]
    assert len(scores) == len(TRIPLES) and all(math.isfinite(s) for s in scores), scores
    spans = [
        [{k: v if isinstance(v, str | int) else float(v) for k, v in s.items()} for s in seg]
        for seg in out.metadata.error_spans
    ]
    return {"scores": scores, "system_score": float(out.system_score), "error_spans": spans}


def main(argv: list[str]) -> int:
    size = "tiny"
    if len(argv) == 3 and argv[1] == "--size" and argv[2] in SIZES:
        size, argv = argv[2], argv[:1]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.time()
    out_dir = Path(argv[0]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Anything the libraries print goes to stderr; stdout carries only the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        ckpt = build_checkpoint(out_dir, size)
        # Real-size builds are for timing: the self-check would load them twice more.
        result = score(ckpt) if size == "tiny" else {}
    report = {
        "checkpoint": str(ckpt),
        "triples": TRIPLES,
        **result,
        "seconds": round(time.time() - t0, 2),
    }
    print(json.dumps(report, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
