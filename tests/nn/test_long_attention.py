"""Long-context attention kinds: each equals dense attention where its pattern covers everything,
equals dense attention under its own mask otherwise, leaks nothing from the future, respects
padding, agrees with itself under a KV cache, and refuses sizes that do not fit."""

import pytest
import torch
from torch.nn import functional as F

from formers import generate
from formers.errors import AttentionFitError, ConfigError
from formers.models import GPT, GPTConfig
from formers.nn import BlockConfig, make_block, sliding_window_mask
from formers.nn.kernel_table import make_kernel
from formers.nn.kernels import SDPAKernel, explicit_attention
from formers.nn.long_attention import LongAttentionConfig
from formers.nn.lsh_attention import SELF_PENALTY
from formers.nn.masks import padding_mask
from formers.nn.position_bias import alibi_slopes

B, H, T, D = 2, 2, 37, 8  # T prime: no tile size divides it, so partial tiles are always exercised


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors


def qkv(t_q=T, t_k=T, grad=False):
    return tuple(torch.randn(B, H, t, D, requires_grad=grad) for t in (t_q, t_k, t_k))


def dense(q, k, v, **kw):
    return explicit_attention(q, k, v, **kw)[0]


def close(a, b):
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def alibi(t_q=T, t_k=T):
    distance = (torch.arange(t_k - t_q, t_k)[:, None] - torch.arange(t_k)[None]).abs()
    return -alibi_slopes(H)[None, :, None, None] * distance  # (1, H, T_q, T_k)


PAD = padding_mask(torch.tensor([[1] * T, [0] * 5 + [1] * (T - 5)]))  # row 1 is left-padded

# Each kind with small sizes; `make` -> kernel. Used by the leak, padding and cache tests.
KINDS = {
    "sliding_window": LongAttentionConfig(window=6, n_global=2, chunk_size=8),
    "block_sparse": LongAttentionConfig(block_size=8, window_blocks=1, n_global_blocks=1, n_random_blocks=1),
    "chunked": LongAttentionConfig(chunk_size=10),
    "lsh": LongAttentionConfig(lsh_buckets=4, lsh_rounds=2, chunk_size=8),
    "lsh_separate_qk": LongAttentionConfig(lsh_buckets=4, lsh_rounds=2, chunk_size=8, lsh_shared_qk=False),
}


def make(kind: str, causal: bool):
    return make_kernel(kind.replace("_separate_qk", ""), KINDS[kind], causal=causal)


# ---- equal to dense where the pattern covers everything ---------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_window_covering_the_sequence_equals_dense(causal):
    q, k, v = qkv()
    kernel = make_kernel("sliding_window", LongAttentionConfig(window=T, chunk_size=8), causal=causal)
    close(kernel(q, k, v, causal=causal, mask=PAD, bias=alibi()), dense(q, k, v, causal=causal, mask=PAD, bias=alibi()))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window,chunk", [(1, 4), (5, 3), (6, 16), (12, 64)])
def test_sliding_window_equals_dense_with_the_band_mask(causal, window, chunk):
    q, k, v = qkv()
    kernel = make_kernel("sliding_window", LongAttentionConfig(window=window, chunk_size=chunk), causal=causal)
    band = sliding_window_mask(T, T, window, causal) & PAD
    close(kernel(q, k, v, causal=causal, mask=PAD, bias=alibi()), dense(q, k, v, mask=band, bias=alibi()))


@pytest.mark.parametrize("causal", [False, True])
def test_global_tokens_see_and_are_seen_by_everyone(causal):
    q, k, v = qkv()
    kernel = make_kernel("sliding_window", LongAttentionConfig(window=4, n_global=3, chunk_size=8), causal=causal)
    allowed = sliding_window_mask(T, T, 4, causal=False)
    allowed[:3, :] = True
    allowed[:, :3] = True
    close(kernel(q, k, v, causal=causal), dense(q, k, v, mask=allowed, causal=causal))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [4, 8, 37])
def test_block_sparse_with_every_block_selected_equals_dense(causal, block):
    q, k, v = qkv()
    cfg = LongAttentionConfig(block_size=block, window_blocks=T, n_global_blocks=1, n_random_blocks=2)
    kernel = make_kernel("block_sparse", cfg, causal=causal)
    close(kernel(q, k, v, causal=causal, mask=PAD), dense(q, k, v, causal=causal, mask=PAD))


@pytest.mark.parametrize("causal", [False, True])
def test_block_sparse_equals_dense_under_its_block_pattern(causal):
    q, k, v = qkv()
    kernel = make("block_sparse", causal)
    b, n_blocks = 8, -(-T // 8)
    chosen = kernel._key_blocks(torch.arange(n_blocks), n_blocks, causal)  # (blocks, S)
    block_mask = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
    for i, row in enumerate(chosen.tolist()):
        block_mask[i, [j for j in row if j >= 0]] = True
    block_mask[:1, :] = True  # the global block's rows see everything
    allowed = block_mask.repeat_interleave(b, 0).repeat_interleave(b, 1)[:T, :T]
    assert 0.3 < allowed.float().mean() < 0.9  # a real sparse pattern, not dense
    close(kernel(q, k, v, causal=causal), dense(q, k, v, mask=allowed, causal=causal))


def test_linformer_with_identity_projections_equals_dense():
    q, k, v = qkv()
    kernel = make_kernel("linformer", LongAttentionConfig(linformer_k=T, linformer_max_len=T))
    with torch.no_grad():
        kernel.proj_k.copy_(torch.eye(T))
        kernel.proj_v.copy_(torch.eye(T))
    close(kernel(q, k, v), dense(q, k, v))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rounds", [1, 3])
def test_lsh_with_one_bucket_equals_dense(causal, rounds):
    q, k, v = qkv()
    cfg = LongAttentionConfig(lsh_buckets=1, lsh_rounds=rounds, chunk_size=2 * T, lsh_shared_qk=False)
    close(make_kernel("lsh", cfg, causal=causal)(q, k, v, causal=causal), dense(q, k, v, causal=causal))


@pytest.mark.parametrize("shared", [True, False])
def test_lsh_rounds_attend_once_to_every_key_sharing_a_bucket(shared):
    """With windows as long as the sequence, LSH attention = dense attention over the union of bucket mates."""
    q, k, v = qkv()
    cfg = LongAttentionConfig(lsh_buckets=4, lsh_rounds=3, chunk_size=2 * T, lsh_shared_qk=shared)
    kernel = make_kernel("lsh", cfg, causal=True)
    keys = F.normalize(q, dim=-1) if shared else k
    bq = kernel.hash(q)
    bk = bq if shared else kernel.hash(keys)
    mates = (bq[..., :, None] == bk[..., None, :]).any(2)  # (B, H, T, T): same bucket in some round
    assert 0.2 < mates.float().mean() < 0.9
    bias = torch.eye(T) * SELF_PENALTY if shared else None
    close(kernel(q, k, v, causal=True), dense(q, keys, v, mask=mates, bias=bias, causal=True))


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_equals_explicit_in_output_and_gradient(causal):
    q, k, v = qkv(grad=True)
    kw = dict(causal=causal, mask=PAD, bias=alibi())
    out = make_kernel("chunked", LongAttentionConfig(chunk_size=10), causal=causal)(q, k, v, **kw)
    ref = dense(q, k, v, **kw)
    close(out, ref)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for g, r in zip(grads, ref_grads, strict=True):
        close(g, r)


# ---- causality, padding, cache -------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_causal_kinds_leak_nothing_from_the_future(kind):
    kernel = make(kind, causal=True)
    q, k, v = qkv()
    out = kernel(q, k, v, causal=True)
    for p in (9, 30):
        changed = [t.clone() for t in (q, k, v)]
        for t in changed:
            t[:, :, p:] = torch.randn_like(t[:, :, p:])
        after = kernel(*changed, causal=True)
        close(after[:, :, :p], out[:, :, :p])
        assert not torch.allclose(after[:, :, p:], out[:, :, p:])


@pytest.mark.parametrize("kind", list(KINDS) + ["linformer"])
def test_padding_is_respected(kind):
    kernel = (make_kernel("linformer", LongAttentionConfig(linformer_k=16, linformer_max_len=64)) if kind == "linformer"
              else make(kind, causal=False))
    q, k, v = qkv()
    out = kernel(q, k, v, mask=PAD)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):  # padded positions of row 1 change completely (q too: shared-QK keys come from q)
        t[1, :, :5] = 50.0
    after = kernel(q2, k2, v2, mask=PAD)
    close(after[1, :, 5:], out[1, :, 5:])
    close(after[0], out[0])
    everything_padded = kernel(q, k, v, mask=torch.zeros(B, 1, 1, T, dtype=torch.bool))
    assert torch.isfinite(everything_padded).all()


@pytest.mark.parametrize("kind", ["sliding_window", "block_sparse", "chunked"])
def test_kv_cache_rows_equal_the_full_pass(kind):
    kernel = make(kind, causal=True)
    q, k, v = qkv()
    full = kernel(q, k, v, causal=True, bias=alibi())
    for t_q in (1, 3, 11):
        close(kernel(q[:, :, -t_q:], k, v, causal=True, bias=alibi(t_q, T)), full[:, :, -t_q:])


@pytest.mark.parametrize("kind", ["sliding_window", "block_sparse"])
def test_generation_with_cache_equals_without(kind):
    cfg = GPTConfig(vocab_size=40, d_model=16, n_heads=2, n_layers=2, max_seq_len=64, dropout=0.0, position="rotary",
                    kernel=kind, attention=KINDS[kind])
    model = GPT(cfg).eval()
    ids, mask = torch.randint(3, 40, (2, 9)), torch.tensor([[1] * 9, [0, 0] + [1] * 7])
    cached = generate(model, ids, attention_mask=mask, max_new_tokens=10)
    uncached = generate(model, ids, attention_mask=mask, max_new_tokens=10, use_cache=False)
    assert torch.equal(cached, uncached)


# ---- in models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sliding_window", "block_sparse", "chunked", "lsh", "linformer"])
def test_every_kind_trains_in_encoders_and_decoders(kind):
    att = LongAttentionConfig(window=4, n_global=1, chunk_size=8, block_size=4, linformer_k=8, linformer_max_len=32)
    for causal in ([False] if kind == "linformer" else [False, True]):
        model = GPT(GPTConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=2, max_seq_len=32, dropout=0.0,
                              position="rotary", causal=causal, kernel=kind, attention=att))
        ids = torch.randint(0, 30, (2, 32))
        logits = model(ids, attention_mask=torch.tensor([[1] * 32, [0] * 4 + [1] * 28])).logits
        logits.square().mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert model.stack.blocks[0].attention.sublayer.kernel.name == kind


def test_linformer_projections_are_weights_of_the_model():
    cfg = GPTConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=2, max_seq_len=32, causal=False,
                    kernel="linformer", attention=LongAttentionConfig(linformer_k=8, linformer_max_len=32))
    keys = GPT(cfg).state_dict()
    assert keys["stack.blocks.1.attention.sublayer.kernel.proj_k"].shape == (8, 32)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


def test_cross_attention_stays_dense():
    block = make_block(BlockConfig(d_model=16, n_heads=2, kernel="sliding_window"), causal=True, cross=True)
    assert block.attention.sublayer.kernel.name == "sliding_window"
    assert isinstance(block.cross_attention.sublayer.kernel, SDPAKernel)


@pytest.mark.parametrize("kind", ["sdpa", "sliding_window"])
def test_gradients_with_checkpointing_equal_gradients_without(kind):
    cfg = GPTConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=3, max_seq_len=32, dropout=0.2, kernel=kind,
                    attention=LongAttentionConfig(window=5, chunk_size=8))
    grads = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        model = GPT(cfg.replace(checkpoint=checkpoint))
        torch.manual_seed(1)  # the same dropout masks, replayed by the checkpoint's recomputation
        model(torch.arange(30)[None] % 30).logits.square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# ---- bad input ---------------------------------------------------------------------------------------
def test_sizes_that_do_not_fit_name_the_value_to_change():
    q, k, v = qkv(t_q=16, t_k=16)
    with pytest.raises(AttentionFitError, match=r"attention\.window=32 .* at most 16"):
        make_kernel("sliding_window", LongAttentionConfig(window=32))(q, k, v)
    with pytest.raises(AttentionFitError, match=r"attention\.block_size=64 .* at most 16"):
        make_kernel("block_sparse", LongAttentionConfig(block_size=64))(q, k, v)
    linformer = make_kernel("linformer", LongAttentionConfig(linformer_k=4, linformer_max_len=8))
    with pytest.raises(AttentionFitError, match=r"linformer_max_len=8 .* at least 16"):
        linformer(q, k, v)
    with pytest.raises(AttentionFitError, match="use_cache=False"):
        make("lsh", causal=True)(q[:, :, -1:], k, v, causal=True)
    # decoders grow from short prompts: a causal window wider than the sequence is fine
    assert make_kernel("sliding_window", LongAttentionConfig(window=32), causal=True)(q, k, v, causal=True).shape
    with pytest.raises(ConfigError, match="cannot be causal"):
        make_kernel("linformer", causal=True)
    with pytest.raises(ConfigError, match="lsh_buckets=3"):
        LongAttentionConfig(lsh_buckets=3)
    with pytest.raises(ConfigError, match="linformer_k=64"):
        LongAttentionConfig(linformer_k=64, linformer_max_len=32)
    with pytest.raises(ConfigError, match="kernel='windowed'"):
        BlockConfig(kernel="windowed")
