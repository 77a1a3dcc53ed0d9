"""Merge methods on small tensors against hand-computed results, both conventions, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from glotbench.training.merge.methods import TensorParams, merge_tensors, slerp_coefficients
from glotbench.training.merge.select import TopK, kth_largest_bits, magnitude_bits

T = torch.tensor


def m(method, inputs, **kw):
    return merge_tensors(TensorParams(method, **kw), inputs)


# -- linear ---------------------------------------------------------------------------------

def test_linear_weighted_mean_and_sum():
    a, b = T([1.0, 2.0]), T([3.0, 6.0])
    assert torch.equal(m("linear", [a, b], weights=(1.0, 3.0)), T([2.5, 5.0]))
    assert torch.equal(m("linear", [a, b], weights=(1.0, 3.0), normalize=False), T([10.0, 20.0]))


def test_linear_of_identical_models_is_the_identity():
    x = torch.randn(7, 5)
    assert torch.equal(m("linear", [x, x, x, x], weights=(1.0,) * 4), x)


def test_linear_zero_weight_sum_is_refused():
    with pytest.raises(ValueError, match="sum to"):
        m("linear", [T([1.0]), T([2.0])], weights=(1.0, -1.0))


# -- slerp ----------------------------------------------------------------------------------

def test_slerp_orthogonal_vectors():
    a, b = T([2.0, 0.0]), T([0.0, 3.0])
    out = m("slerp", [a, b], t=0.5)
    r = math.sqrt(0.5)
    assert torch.allclose(out, T([2 * r, 3 * r]), atol=1e-7)
    # t = 1/3 of a right angle: coefficients sin(60°)/1 and sin(30°)/1
    out = m("slerp", [a, b], t=1 / 3)
    assert torch.allclose(out, T([2 * math.sin(math.pi / 3), 3 * 0.5]), atol=1e-6)


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_slerp_endpoints_are_exact(t):
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(m("slerp", [a, b], t=t), a if t == 0 else b)


@pytest.mark.parametrize("b_factor", [2.0, -3.0])
def test_slerp_colinear_and_antiparallel_fall_back_to_lerp(b_factor):
    a = T([1.0, 2.0, -1.0])
    b = a * b_factor
    assert torch.allclose(m("slerp", [a, b], t=0.25), 0.75 * a + 0.25 * b, atol=1e-7)


def test_slerp_zero_norm_tensor_conventions():
    a, b = torch.zeros(3), T([1.0, -2.0, 2.0])
    # glotbench: no direction to rotate from → linear interpolation
    assert torch.allclose(m("slerp", [a, b], t=0.3), 0.3 * b)
    # mergekit keeps the zero vector's norm at 1: angle π/2, b scaled by sin(tπ/2)
    assert torch.allclose(m("slerp", [a, b], t=0.3, convention="mergekit"), math.sin(0.3 * math.pi / 2) * b)
    assert torch.equal(m("slerp", [a, a], t=0.5), a)


def test_slerp_coefficients_direct():
    assert slerp_coefficients(0.5, 0.0, 1.0, 1.0, "paper") == pytest.approx((math.sqrt(0.5),) * 2)
    assert slerp_coefficients(0.2, 0.9999, 1.0, 1.0, "paper") == (0.8, 0.2)


# -- task arithmetic ------------------------------------------------------------------------

def test_task_arithmetic():
    base = T([1.0, 1.0, 1.0])
    a, b = base + T([1.0, 2.0, 3.0]), base + T([3.0, -2.0, 1.0])
    out = m("task_arithmetic", [base, a, b], weights=(1.0, 0.5), lam=2.0, normalize=False)
    assert torch.allclose(out, base + T([5.0, 2.0, 7.0]))
    out = m("task_arithmetic", [base, a, b], weights=(1.0, 0.5), lam=2.0, normalize=True)
    assert torch.allclose(out, base + T([5.0, 2.0, 7.0]) / 1.5)


# -- TIES -----------------------------------------------------------------------------------

BASE = T([0.5, 0.5, 0.5, 0.5])
D1, D2 = T([4.0, -1.0, 2.0, -3.0]), T([-2.0, 3.0, 1.0, -1.0])
# density 0.5 keeps k = 2 of 4: τ̂1 = [4, 0, 0, -3], τ̂2 = [-2, 3, 0, 0]


def ties(weights, convention="paper", **kw):
    return m("ties", [BASE, BASE + D1, BASE + D2], weights=weights, densities=(0.5, 0.5),
             convention=convention, normalize=True, **kw) - BASE


def test_ties_paper_convention_unequal_weights():
    # sign on unweighted Σ τ̂ = [2, 3, 0, -3] → [+, +, + (zero counts +), -]
    # entry 0: only τ̂1 = 4 agrees → 1·4/1; entry 1: τ̂2 = 3 → 3·3/3; entry 2: nothing → 0
    assert torch.allclose(ties((1.0, 3.0)), T([4.0, 3.0, 0.0, -3.0]))


def test_ties_mergekit_convention_unequal_weights():
    # sign on weighted Σ wτ̂ = [4-6, 9, 0, -3] → entry 0 elects −: −6/3 = −2
    assert torch.allclose(ties((1.0, 3.0), "mergekit"), T([-2.0, 3.0, 0.0, -3.0]))


def test_ties_conventions_agree_with_equal_weights_and_lambda_scales():
    assert torch.allclose(ties((1.0, 1.0)), ties((1.0, 1.0), "mergekit"))
    assert torch.allclose(ties((1.0, 1.0)), T([4.0, 3.0, 0.0, -3.0]))
    assert torch.allclose(ties((1.0, 1.0), lam=0.5), T([2.0, 1.5, 0.0, -1.5]))


def test_ties_disjoint_mean_over_agreeing_entries():
    base = torch.zeros(3)
    x = [T([2.0, -1.0, 4.0]), T([4.0, 3.0, -1.0]), T([-1.0, 1.0, 2.0])]
    out = m("ties", [base, *x], weights=(1.0, 1.0, 1.0), densities=(1.0, 1.0, 1.0))
    # sums [5, 3, 5] → all +; means of the positive entries: (2+4)/2, (3+1)/2, (4+2)/2
    assert torch.allclose(out, T([3.0, 2.0, 3.0]))


def test_ties_trim_keeps_exactly_k_with_ties_broken_by_position():
    base = torch.zeros(6, 1)
    d = T([[1.0], [2.0], [2.0], [2.0], [0.5], [2.0]])
    for chunk_rows in (1, 2, 6):
        out = merge_tensors(TensorParams("ties", weights=(1.0,), densities=(0.5,)), [base, d], chunk_rows=chunk_rows)
        assert out.flatten().tolist() == [0.0, 2.0, 2.0, 2.0, 0.0, 0.0]


# -- DARE -----------------------------------------------------------------------------------

def test_dare_paper_rescale_is_inverse_density_and_expectation_is_preserved():
    base = torch.zeros(1000)
    delta = torch.linspace(-1, 1, 1000)
    outs = []
    for seed in range(400):
        out = merge_tensors(TensorParams("dare_linear", weights=(1.0,), densities=(0.25,), normalize=False),
                            [base, delta], seed=seed)
        kept = out != 0
        assert torch.allclose(out[kept], delta[kept] / 0.25)
        outs.append(out)
    stack = torch.stack(outs)
    kept_fraction = (stack != 0).float().mean().item()
    assert abs(kept_fraction - 0.25) < 4 * math.sqrt(0.25 * 0.75 / stack.numel())
    # E[out] = δ: each entry's mean over n seeds has variance 3δ²/n (Bernoulli(¼)·4δ), so
    # test every entry at 5 standard deviations, the sum and the projection on δ at 4.
    n, mean = len(outs), stack.mean(0)
    assert ((mean - delta).abs() <= 5 * (3 * delta**2 / n).sqrt() + 1e-6).all()
    sd_sum = math.sqrt(3 * (delta**2).sum().item() / n)
    assert abs(mean.sum().item() - delta.sum().item()) < 4 * sd_sum
    sd_proj = math.sqrt(3 * (delta**4).sum().item() / n) / (delta**2).sum().item()
    assert abs((mean * delta).sum().item() / (delta**2).sum().item() - 1) < 4 * sd_proj


def test_dare_mergekit_rescale_matches_l1_norm():
    base = torch.zeros(50, 4)
    delta = torch.randn(50, 4)
    out = merge_tensors(TensorParams("dare_linear", "mergekit", weights=(1.0,), densities=(0.3,), normalize=False),
                        [base, delta], seed=3)
    assert math.isclose(out.abs().sum().item(), delta.abs().sum().item(), rel_tol=1e-5)
    kept = out != 0
    ratio = out[kept] / delta[kept]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))


def test_dare_without_rescale_only_drops():
    base, delta = torch.zeros(200), torch.randn(200)
    out = merge_tensors(TensorParams("dare_linear", weights=(1.0,), densities=(0.5,), normalize=False, rescale=False),
                        [base, delta], seed=1)
    kept = out != 0
    assert torch.equal(out[kept], delta[kept]) and 60 < int(kept.sum()) < 140


def test_dare_is_seeded_and_chunk_independent():
    base, a, b = torch.randn(9, 5), torch.randn(9, 5), torch.randn(9, 5)
    p = TensorParams("dare_ties", "mergekit", weights=(0.6, 0.4), densities=(0.5, 0.7))
    ref = merge_tensors(p, [base, a, b], seed=7)
    assert torch.equal(ref, merge_tensors(p, [base, a, b], seed=7, chunk_rows=2))
    assert not torch.equal(ref, merge_tensors(p, [base, a, b], seed=8))


def test_dare_ties_at_density_one_is_ties():
    base, a, b = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 4)
    for conv in ("paper", "mergekit"):
        kw = dict(convention=conv, weights=(0.7, 0.3), densities=(1.0, 1.0), normalize=True)
        assert torch.equal(merge_tensors(TensorParams("dare_ties", **kw), [base, a, b]),
                           merge_tensors(TensorParams("ties", **kw), [base, a, b]))


@pytest.mark.parametrize("method", ["linear", "slerp", "task_arithmetic", "ties", "dare_ties", "dare_linear"])
def test_every_method_is_chunk_size_independent(method):
    torch.manual_seed(0)
    xs = [torch.randn(13, 7) for _ in range(3 if method != "slerp" else 2)]
    n = len(xs) if method == "linear" else len(xs) - 1
    p = TensorParams(method, weights=(0.5, 0.3, 0.2)[:n], densities=(0.4, 0.6)[:n], t=0.3)
    ref = merge_tensors(p, xs)
    for rows in (1, 4, 12):
        assert torch.equal(ref, merge_tensors(p, xs, chunk_rows=rows)), rows


# -- streaming k-th largest -----------------------------------------------------------------

@pytest.mark.parametrize("dtype,width", [(torch.float32, 32), (torch.float64, 64)])
def test_kth_largest_matches_sort(dtype, width):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=g, dtype=dtype)
    x[::7] = 0.25  # ties
    mags = x.abs().sort(descending=True).values
    chunks = list(magnitude_bits(x).split(777))
    for k in (1, 10, 714, 715, 2500, 5000):
        bits, take = kth_largest_bits(lambda: iter(chunks), k, width)
        assert magnitude_bits(mags[k - 1:k]).item() == bits
        topk = TopK(bits, take)
        kept = sum(int(topk.mask(c).sum()) for c in chunks)
        assert kept == k
