"""harness.vector: N stacked copies of the plain MLP GAN equal N single-copy trials.

On the CPU the copies are bit-equal to their single-copy ``Trainer``s (see the module
docstring of harness.vector.engine): every comparison with a single trial here is exact
(``torch.equal`` / ``==``), and :func:`test_copies_stay_bit_equal_for_200_steps_at_the_default_size`
checks the default 4x128 MLP over 200 steps at N = 3 and N = 32; the slow
``test_bit_equal_under_every_kernel_set`` repeats it under MKL's AVX2 and SSE4.2 kernels
and ATen's AVX2 kernels, whatever CPU runs the suite.
"""

import math

import pytest
import torch

from harness import names
from harness.config import TrialConfig
from harness.metrics import ModeCoverage, batched_mode_coverage, mode_coverage
from harness.plugins import load_plugins
from harness.trial import build_trainer
from harness.vector.adam import StackedAdam
from harness.vector.engine import VectorizedGAN
from harness.vector.linear import StackedLinear

load_plugins()

HIDDEN = {"g_hidden": [32, 32], "d_hidden": [32, 32]}
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_config(seed=0, loss="non_saturating", model_params=None, **train):
    settings = {"steps": 40, "eval_every": 20, "log_every": 5, "eval_samples": 200,
                "batch_size": 32}
    settings.update(train)
    return TrialConfig(
        study="t", variant="v", dataset_key="ring8",
        model={"name": "mlp", "params": dict(HIDDEN if model_params is None else model_params)},
        loss={"name": loss, "params": {}}, dataset="ring8", metrics=["mode_coverage"],
        train=settings, seed=seed,
    )


def four_configs(loss="non_saturating", **train):
    """Seeds 0..3, each with its own lr_d, lr_g, beta1, beta2."""
    return [make_config(seed=k, loss=loss, lr_d=1e-3 * (k + 1), lr_g=2e-3 / (k + 1),
                        beta1=0.5 + 0.1 * k, beta2=0.999 - 0.002 * k, **train)
            for k in range(4)]


def single_run(cfg, steps):
    """The harness's single-copy Trainer, stepped as TrainingLoop.fit steps it."""
    trainer = build_trainer(cfg)
    rows = []
    for _ in range(steps):
        rows.append(trainer.train_step(measure=(trainer.step + 1) % cfg.train.log_every == 0))
        trainer.step += 1
    return trainer, rows


def vector_run(cfgs, steps, **kw):
    vec = VectorizedGAN(cfgs, **kw)
    rows = [vec.train_step(measure=(vec.step + 1) % cfgs[0].train.log_every == 0)
            for _ in range(steps)]
    return vec, rows


def assert_same_rows(vec_rows, rows, k, rel, abs):
    """Copy ``k``'s diagnostics rows (from :func:`vector_run`) equal a single trial's, logged
    at the same steps, every key to ``rel``/``abs``."""
    for mine, theirs in zip((r[k] if r else None for r in vec_rows), rows, strict=True):
        assert (mine is None) == (theirs is None)
        if theirs is not None:
            assert set(mine) == set(theirs)
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=rel, abs=abs), key


def assert_same_networks(vec, k, trainer, tol=None):
    """Copy ``k``'s networks equal ``trainer``'s: bit for bit, or to ``tol`` (``rtol``,
    ``atol``) where a kernel rounds otherwise (grouped convolutions, the GPU)."""
    state = vec.copy_state(k)
    for net, module in (("generator", trainer.G), ("discriminator", trainer.D)):
        theirs = module.state_dict()
        assert set(state[net]) == set(theirs)
        for key, value in theirs.items():
            if tol is None:
                assert torch.equal(state[net][key], value), (
                    f"copy {k} {net}.{key}: max difference "
                    f"{(state[net][key] - value).abs().max().item():.3g}")
            else:
                torch.testing.assert_close(state[net][key], value, **tol, msg=f"{net}.{key}")


# --- StackedAdam ---------------------------------------------------------------------------


LRS, BETA1, BETA2 = [1e-3, 3e-2, 1e-1, 5e-4], [0.5, 0.9, 0.0, 0.8], [0.999, 0.9, 0.99, 0.5]


def _copy_loss(w, b, x, y):
    return ((torch.tanh(x @ w + b) - y) ** 2).mean() + 0.1 * (w ** 4).sum()


#: StackedAdam's modes: eager (torch's kernels, equal to torch.optim.Adam to the last bit
#: on the CPU) and compiled (fused kernels that round differently)
eager_and_compiled = pytest.mark.parametrize("compile", [None, "default"],
                                             ids=["eager", "compiled"])


@eager_and_compiled
def test_stacked_adam_equals_independent_torch_adams(compile):
    gen = torch.Generator().manual_seed(0)
    n = len(LRS)
    w0, b0 = torch.randn(n, 7, 5, generator=gen), torch.randn(n, 5, generator=gen)
    x, y = torch.randn(n, 16, 7, generator=gen), torch.randn(n, 16, 5, generator=gen)
    W, B = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    stacked = StackedAdam([W, B], LRS, (BETA1, BETA2), compile=compile)
    singles = []
    for k in range(n):
        w, b = w0[k].clone().requires_grad_(), b0[k].clone().requires_grad_()
        singles.append((w, b, torch.optim.Adam([w, b], lr=LRS[k], betas=(BETA1[k], BETA2[k]))))
    for _ in range(20):
        # the sum of per-copy losses: copy k's gradient is its own loss's gradient
        total = sum(_copy_loss(W[k], B[k], x[k], y[k]) for k in range(n))
        W.grad = B.grad = None
        total.backward()
        stacked.step()
        for k, (w, b, opt) in enumerate(singles):
            opt.zero_grad()
            _copy_loss(w, b, x[k], y[k]).backward()
            opt.step()
    # eager: torch's own kernels, bit for bit. Compiled: fused kernels that round otherwise
    # (and differently per CPU: inductor vectorizes for the machine's SIMD width); 20 steps
    # at lr up to 0.1 grow the per-step float32 rounding to ~1e-5 (seen: 7.9e-6 absolute on
    # an Intel Xeon with AVX-512), so the compiled update is held to 1e-4 / 1e-5
    tol = {"rtol": 0, "atol": 0} if compile is None else {"rtol": 1e-4, "atol": 1e-5}
    for k, (w, b, opt) in enumerate(singles):
        torch.testing.assert_close(W[k].detach(), w.detach(), **tol)
        torch.testing.assert_close(B[k].detach(), b.detach(), **tol)
        torch.testing.assert_close(stacked.exp_avg_sq[0][k], opt.state[w]["exp_avg_sq"], **tol)
    assert not torch.equal(W[0], W[1])  # the per-copy hyperparameters mattered


@eager_and_compiled
def test_stacked_adam_freezes_inactive_copies_even_with_nan_gradients(compile):
    gen = torch.Generator().manual_seed(1)
    p = torch.randn(3, 4, 2, generator=gen)
    opt = StackedAdam([p], [0.1, 0.1, 0.1], (0.5, 0.999), compile=compile)
    opt.step([torch.randn(3, 4, 2, generator=gen)])
    before = p.clone(), opt.exp_avg[0].clone(), opt.exp_avg_sq[0].clone()
    grad = torch.randn(3, 4, 2, generator=gen)
    grad[1] = float("nan")
    opt.step([grad], active=torch.tensor([True, False, True]))
    assert torch.equal(p[1], before[0][1])
    assert torch.equal(opt.exp_avg[0][1], before[1][1])
    assert torch.equal(opt.exp_avg_sq[0][1], before[2][1])
    assert opt.steps.tolist() == [2.0, 1.0, 2.0]
    assert torch.isfinite(p).all() and not torch.equal(p[0], before[0][0])


def _bits(t):
    return t.contiguous().view(torch.int32)


@pytest.mark.parametrize("eps", [1e-8, 1e-6, 1e-3])
@pytest.mark.parametrize("beta2", [0.0, 0.5, 0.999, 0.99999])
def test_the_square_root_floor_changes_no_adam_denominator(beta2, eps):
    """Raising v to StackedAdam.sqrt_floor before the square root gives, bit for bit, the
    denominator sqrt(v) / sqrt(1 - beta2 ** t) + eps of v itself, for zeros, subnormals,
    every value around the floor, and the bias corrections of early and late steps."""
    opt = StackedAdam([torch.zeros(2, 3)], 1e-3, (0.9, [beta2, beta2 / 2]), eps=eps)
    floor = opt.sqrt_floor(torch.float32)
    assert floor >= torch.finfo(torch.float32).tiny  # a normal number, or it would not help
    around = floor * torch.logspace(-6, 6, 4001, dtype=torch.float64)
    v = torch.cat([torch.zeros(8), torch.tensor([1e-45, 1e-40, 1e-39, 1.1e-38]),
                   around.float(), torch.rand(1000) * 1e-3]).float()
    for t in (1, 2, 3, 10, 1000, 10**6):
        c = torch.tensor((1 - beta2 ** t) ** 0.5, dtype=torch.float32)
        plain = v.sqrt().div_(c).add_(eps)
        floored = v.clamp_min(floor).sqrt_().div_(c).add_(eps)
        assert torch.equal(_bits(floored), _bits(plain)), (t, beta2, eps)
    assert (v < floor).sum() > 2000 and (v > floor).sum() > 2000  # both sides were checked


def test_no_square_root_floor_where_none_is_exact_or_useful():
    assert StackedAdam([torch.zeros(2, 3)], 1e-3, (0.9, 1.0)).sqrt_floor(torch.float32) == 0
    assert StackedAdam([torch.zeros(2, 3)], 1e-3, eps=0.0).sqrt_floor(torch.float32) == 0
    # a floor for eps 1e-30 would be subnormal in float32: none
    assert StackedAdam([torch.zeros(2, 3)], 1e-3, eps=1e-30).sqrt_floor(torch.float32) == 0
    assert StackedAdam([torch.zeros(2, 3)], 1e-3, eps=1e-30).sqrt_floor(torch.float64) > 0


def test_the_allocation_free_update_equals_the_plain_one_bit_for_bit():
    from harness.vector.adam import _adam_update, _adam_update_eager

    gen = torch.Generator().manual_seed(3)
    shape = (4, 30, 20)
    p, g, m = (torch.randn(shape, generator=gen) for _ in range(3))
    v = torch.rand(shape, generator=gen) * 1e-4
    v[:, :5] = 0.0  # never-updated parameters
    v[:, 5:8] = 1e-40  # subnormal second moments
    g[:, :8] = 0.0
    # 1 - beta1, beta2, 1 - beta2, sqrt(1 - beta2 ** t) (>= sqrt(1 - 0.999)), -lr / (1 - beta1 ** t)
    coef = [torch.rand(4, 1, 1, generator=gen) for _ in range(3)] + [
        0.0317 + torch.rand(4, 1, 1, generator=gen), -1e-3 * torch.rand(4, 1, 1, generator=gen)]
    opt = StackedAdam([p], 1e-3, (0.5, 0.999))
    a = [t.clone() for t in (p, g, m, v)]
    b = [t.clone() for t in (p, g, m, v)]
    _adam_update(*a, *coef, 1e-8)
    scratch = (torch.full(shape, float("nan")), torch.full(shape, float("nan")))
    _adam_update_eager(*b, *coef, 1e-8, opt.sqrt_floor(torch.float32), scratch)
    for mine, theirs in zip(b, a):
        assert torch.equal(_bits(mine), _bits(theirs))


# --- stacked networks ----------------------------------------------------------------------


def test_stacked_linear_equals_nn_linear_including_a_one_unit_head():
    torch.manual_seed(0)
    for n_out in (1, 2, 32):
        layers = [torch.nn.Linear(32, n_out) for _ in range(3)]
        stacked = StackedLinear.from_linears(layers)
        x = torch.randn(3, 50, 32)
        out = stacked(x)
        for k, layer in enumerate(layers):
            assert torch.equal(out[k], layer(x[k])), (n_out, k)


@pytest.mark.parametrize("need_x", [True, False], ids=["input-grad", "no-input-grad"])
def test_stacked_linear_backward_equals_nn_linear_bit_for_bit_in_weight_layout(need_x):
    """StackedLinear's gradients are nn.Linear's, to the last bit, with the weight's in the
    weight's own layout (as torch.autograd.grad, VectorizedGAN's call, hands it over)."""
    torch.manual_seed(1)
    for n_in, n_out in ((16, 1), (16, 2), (16, 32), (128, 128), (2, 128), (128, 1)):
        layers = [torch.nn.Linear(n_in, n_out) for _ in range(3)]
        stacked = StackedLinear.from_linears(layers)
        x = torch.randn(3, 64, n_in, requires_grad=need_x)
        up = torch.randn(3, 64, n_out)  # the gradient flowing in from above
        wrt = [stacked.weight, stacked.bias] + ([x] if need_x else [])
        out = stacked(x)
        grads = torch.autograd.grad((out * up).sum(), wrt)
        assert grads[0].is_contiguous()
        for k, layer in enumerate(layers):
            xk = x[k].detach().clone().requires_grad_(need_x)
            yk = layer(xk)
            (yk * up[k]).sum().backward()
            where = (n_in, n_out, k)
            assert torch.equal(out[k], yk), where
            assert torch.equal(grads[0][k], layer.weight.grad), where
            assert torch.equal(grads[1][k], layer.bias.grad), where
            if need_x:
                assert torch.equal(grads[2][k], xk.grad), where


def test_the_generator_step_computes_no_discriminator_weight_gradient(monkeypatch):
    """StackedLinear's own backward decides at forward time which gradients it computes;
    the G step calls D with D frozen, so D's big layers there give G its input gradients
    and no weight gradient (one D step, one G step: D's layers once with, once without)."""
    from harness.vector import linear

    calls = []
    plain_backward = linear._StackedLinearFunction.backward

    def recording_backward(ctx, grad):
        calls.append(tuple(ctx.needs_input_grad))
        return plain_backward(ctx, grad)

    monkeypatch.setattr(linear._StackedLinearFunction, "backward",
                        staticmethod(recording_backward))
    vec = VectorizedGAN(four_configs())
    vec.train_step(measure=True)
    # (input, weight, bias) per call; hidden [32, 32]: G's 3 layers go through the Function,
    # D's 2 (not its one-unit head); a first layer's input (data, noise) needs no gradient
    d_step = [(False, True, True), (True, True, True)] * 2  # on the real and the fake batch
    d_in_g_step = [(True, False, False)] * 2
    g_step = [(False, True, True), (True, True, True), (True, True, True)]
    assert sorted(calls) == sorted(d_step + d_in_g_step + g_step)
    assert all(p.requires_grad for p in vec.d_params + vec.g_params)


#: the pacgan preset's layers (batch norm in G, maxout in D, N(0, 0.02) start), narrower
PACGAN_SMALL = {"preset": "pacgan", "g_hidden": [32, 32], "d_hidden": [16, 16]}


def packed_config(seed, m, **train):
    cfg = make_config(seed=seed, model_params=PACGAN_SMALL, **train)
    if m is None:
        return cfg
    return TrialConfig.model_validate(
        {**cfg.model_dump(), "tricks": [{"name": "packing", "params": {"m": m}}]})


@pytest.mark.parametrize("m", [None, 2, 3], ids=["gan", "pacgan2", "pacgan3"])
def test_batch_norm_maxout_and_packing_copies_are_bit_equal(m):
    """PacGAN's networks: each copy's G (batch norm: running statistics included), packed
    maxout D, diagnostics rows and evaluation samples equal its single trial's, bit for bit,
    after 40 steps. The batch gives D 32 packs (at 16 rows MKL's batched and single weight
    gradients round apart in the last bit, with or without these layers)."""
    cfgs = [packed_config(k, m, batch_size=32 * (m or 1), lr_d=1e-3 * (k + 1)) for k in range(3)]
    vec, vec_rows = vector_run(cfgs, 40)
    assert type(vec.G.layers[1]).__name__ == "StackedBatchNorm1d"
    for k, cfg in enumerate(cfgs):
        trainer, rows = single_run(cfg, 40)
        assert_same_networks(vec, k, trainer)
        assert_same_rows(vec_rows, rows, k, 0, 0)
        assert torch.equal(vec.sample()[k], trainer.sample())


def test_a_trick_that_acts_in_the_step_is_refused_by_the_engine():
    cfg = make_config(seed=0)
    cfg = TrialConfig.model_validate({**cfg.model_dump(), "tricks": ["feature_matching"]})
    with pytest.raises(ValueError, match="tricks feature_matching act in the training step"):
        VectorizedGAN([cfg])


def test_copies_may_differ_only_in_seed_and_optimiser_settings():
    with pytest.raises(ValueError, match="batch_size"):
        VectorizedGAN([make_config(seed=0), make_config(seed=1, batch_size=16)])
    with pytest.raises(ValueError, match="'model'"):
        VectorizedGAN([make_config(seed=0), make_config(seed=1, model_params={"g_hidden": [8]})])


# --- copy k == the single-copy trial with seed k ----------------------------------------------


@pytest.mark.parametrize("d_steps", [1, 2])
def test_copies_equal_single_copy_trainers(d_steps):
    cfgs = four_configs(d_steps=d_steps)
    vec, vrows = vector_run(cfgs, 20)
    assert vec.diverged == {}
    for k, cfg in enumerate(cfgs):
        trainer, rows = single_run(cfg, 20)
        assert_same_networks(vec, k, trainer)
        logged = [(i, r) for i, r in enumerate(rows) if r is not None]
        assert [i + 1 for i, _ in logged] == [5, 10, 15, 20]
        for i, row in logged:
            mine = vrows[i][k]
            assert set(mine) == set(row) == set(names.STEP_HISTORIES)
            assert mine == row, (k, i + 1)
        assert [s for s, _ in vec.history[k]] == [5, 10, 15, 20]
        # evaluation: the Trainer's fixed evaluation noise and its mode coverage
        samples = vec.sample()
        assert torch.equal(samples[k], trainer.sample())
        if d_steps == 1:
            cov = vec.mode_coverage()[k]
            assert cov == ModeCoverage().evaluate(trainer.sample(), trainer.dataset).values
    assert not torch.equal(vec.G.layers[0].weight[0], vec.G.layers[0].weight[1])


#: the sizes of the benchmark's ring MLP (4 x 128), copies of three and of thirty-two
DEFAULT_MLP = {"g_hidden": [128] * 4, "d_hidden": [128] * 4}


def bit_equal_check(n_copies, steps, checked, model_params=DEFAULT_MLP, batch_size=64,
                    loss="non_saturating"):
    """Train ``n_copies`` copies (4x128 unless ``model_params`` says otherwise; each its own
    seed, lr_d and beta1) and the single trials of copies ``checked`` for ``steps`` steps;
    returns the mismatches (empty: every parameter, every logged diagnostics row and the
    evaluation samples are bit-equal)."""
    cfgs = [make_config(seed=k, loss=loss, model_params=model_params, batch_size=batch_size,
                        log_every=10, lr_d=1e-3 * (1 + k % 3), beta1=(0.5, 0.8)[k % 2])
            for k in range(n_copies)]
    vec, vrows = vector_run(cfgs, steps)
    bad = []
    for k in checked:
        trainer, rows = single_run(cfgs[k], steps)
        state = vec.copy_state(k)
        for net, module in (("generator", trainer.G), ("discriminator", trainer.D)):
            for key, value in module.state_dict().items():
                if not torch.equal(state[net][key], value):
                    diff = (state[net][key] - value).abs().max().item()
                    bad.append(f"copy {k} of {n_copies}: {net}.{key} differs by up to {diff:.3g}")
        for i, row in enumerate(rows):
            if row != (vrows[i][k] if vrows[i] is not None else None):
                bad.append(f"copy {k} of {n_copies}: diagnostics row of step {i + 1} differs")
                break
        if not torch.equal(vec.sample()[k], trainer.sample()):
            bad.append(f"copy {k} of {n_copies}: evaluation samples differ")
    return bad


@pytest.mark.parametrize("n_copies, checked", [(3, (0, 1, 2)), (32, (0, 13, 31))],
                         ids=["N=3", "N=32"])
def test_copies_stay_bit_equal_for_200_steps_at_the_default_size(n_copies, checked):
    """The claim the README makes for ``vectorize`` on the CPU: a copy *is* its single
    trial, to the last bit, over a run long enough for a last-bit difference to have grown
    into a visibly different GAN (0.1-0.8 in the weights by step 200-600)."""
    assert bit_equal_check(n_copies, 200, checked) == []


def test_the_default_studys_copies_stay_bit_equal():
    """studies/stability.yaml's shapes: the ``mlp`` default preset (3 x 128), batch 128, six
    seeds per trial, least squares (its best loss there), 200 steps."""
    assert bit_equal_check(6, 200, (0, 5), model_params={}, batch_size=128,
                           loss="least_squares") == []


def test_leaky_relu_and_tanh_output_copies_equal_single_copy_trainers():
    params = {"g_hidden": [16, 16], "d_hidden": [16], "activation": "leaky_relu",
              "g_output": "tanh"}
    cfgs = [make_config(seed=k, loss="minimax", model_params=params, lr_d=(k + 1) * 1e-3)
            for k in range(2)]
    vec, _ = vector_run(cfgs, 10)
    for k, cfg in enumerate(cfgs):
        trainer, _ = single_run(cfg, 10)
        assert_same_networks(vec, k, trainer)


def test_loop_loss_mode_equals_vmap():
    cfgs = four_configs(loss="least_squares")[:2]
    a, _ = vector_run(cfgs, 6, loss_mode="vmap")
    b, _ = vector_run(cfgs, 6, loss_mode="loop")
    assert (a.loss_mode, b.loss_mode) == ("vmap", "loop")
    for k in range(2):
        for net in ("generator", "discriminator"):
            for key, value in a.copy_state(k)[net].items():
                torch.testing.assert_close(b.copy_state(k)[net][key], value, **TOL)


# --- divergence ------------------------------------------------------------------------------


def _assert_others_unchanged(vec, kept, reference):
    """Copies ``kept`` of ``vec`` equal copies 0.. of ``reference`` (a run without the bad one)."""
    for j, k in enumerate(kept):
        for net in ("generator", "discriminator"):
            mine, theirs = vec.copy_state(k)[net], reference.copy_state(j)[net]
            for key in theirs:
                torch.testing.assert_close(mine[key], theirs[key], **TOL)
        assert [s for s, _ in vec.history[k]] == [s for s, _ in reference.history[j]]


def test_a_copy_with_nan_parameters_is_masked_and_the_others_are_untouched():
    cfgs = four_configs()
    vec = VectorizedGAN(cfgs)
    vec.train(5)
    with torch.no_grad():
        vec.D.layers[0].weight[1, 0, 0] = float("nan")
    frozen_g = {k: v.clone() for k, v in vec.copy_state(1)["generator"].items()}
    vec.train(10)
    assert vec.diverged == {1: 6}
    assert [s for s, _ in vec.history[1]] == [5]  # no rows once frozen
    assert all(torch.equal(vec.copy_state(1)["generator"][k], v) for k, v in frozen_g.items())
    assert bool(vec.active[1]) is False and bool(vec.active[[0, 2, 3]].all())
    reference = VectorizedGAN([cfgs[0], cfgs[2], cfgs[3]])
    reference.train(15)
    _assert_others_unchanged(vec, [0, 2, 3], reference)


def test_a_copy_with_a_huge_learning_rate_diverges_alone():
    good = four_configs()[:3]
    bad = make_config(seed=7, lr_d=1e4, lr_g=1e4)
    vec = VectorizedGAN([good[0], bad, good[1], good[2]])
    vec.train(15)
    assert set(vec.diverged) == {1} and 1 <= vec.diverged[1] <= 15
    for net in ("generator", "discriminator"):  # frozen at its last finite parameters
        assert all(torch.isfinite(v).all() for v in vec.copy_state(1)[net].values())
    reference = VectorizedGAN(good)
    reference.train(15)
    _assert_others_unchanged(vec, [0, 2, 3], reference)


def test_a_logged_loss_above_diverge_loss_freezes_the_copy_at_that_log_step():
    # non-saturating with lr 10: finite losses that exceed diagnostics.diverge_loss (1e6)
    vec = VectorizedGAN([make_config(seed=0), make_config(seed=1, lr_d=10.0, lr_g=10.0)])
    vec.train(20)
    assert vec.diverged == {1: 5}
    step, row = vec.history[1][-1]
    assert step == 5 and abs(row[names.LOSS_G]) > 1e6 and math.isfinite(row[names.LOSS_G])
    assert [s for s, _ in vec.history[0]] == [5, 10, 15, 20]


def test_a_diverged_copy_records_why_as_a_single_trial_does():
    from harness.vector.trial import VectorTrainer

    loop = VectorTrainer([make_config(seed=0), make_config(seed=1, lr_d=10.0, lr_g=10.0)])
    ok, bad = loop.run([None, None])
    assert ok.status != names.STATUS_DIVERGED and names.TAG_DIVERGED_REASON not in ok.tags
    assert bad.status == names.STATUS_DIVERGED
    reason = bad.tags[names.TAG_DIVERGED_REASON]
    assert reason.startswith("loss_") and reason.endswith("at step 5, beyond diverge_loss 1e+06")


# --- batched evaluation ----------------------------------------------------------------------


def test_batched_mode_coverage_equals_mode_coverage_per_copy():
    gen = torch.Generator().manual_seed(3)
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    modes = torch.randint(0, 4, (3, 300), generator=gen)
    samples = centres[modes] + 0.05 * torch.randn(3, 300, 2, generator=gen)
    samples[1, :200] = 5.0  # far from every centre
    samples[2, :10] = float("nan")
    samples[2, 10:] = centres[0]  # collapsed onto one mode
    batched = batched_mode_coverage(samples, centres, 0.02)
    for k in range(3):
        assert batched[k] == mode_coverage(samples[k], centres, 0.02)
    assert [c.modes_covered for c in batched] == [4, 4, 1]
    assert batched[1].hq_fraction < 0.5 and batched[2].hq_fraction == pytest.approx(290 / 300)


# --- compiled step ---------------------------------------------------------------------------


def test_a_compiled_step_trains_like_the_eager_one_and_still_freezes_a_bad_copy():
    """``compile``: the same 12 steps as the eager (bit-equal to single trials) run, to
    float32 rounding, and a copy with NaN weights is frozen without touching the others."""
    from torch._dynamo.utils import counters

    cfgs = four_configs()
    eager, erows = vector_run(cfgs, 12)
    torch._dynamo.reset()  # compile afresh (the on-disk caches keep it quick), and count
    counters.clear()
    compiled, crows = vector_run(cfgs, 12, compile="default")
    # G, D and the Adam update were compiled, in whole graphs
    assert counters["stats"]["unique_graphs"] >= 3 and not counters["graph_break"]
    for k in range(4):
        for net in ("generator", "discriminator"):
            for key, value in eager.copy_state(k)[net].items():
                torch.testing.assert_close(compiled.copy_state(k)[net][key], value,
                                           rtol=1e-4, atol=1e-5, msg=f"copy {k} {net}.{key}")
    for i in (4, 9):  # the logged steps 5 and 10
        for k in range(4):
            for key, value in erows[i][k].items():
                assert crows[i][k][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (i, k, key)
    with torch.no_grad():
        compiled.D.layers[0].weight[2, 0, 0] = float("nan")
    kept = {k: compiled.copy_state(k) for k in range(4)}
    compiled.train(5)
    assert compiled.diverged == {2: 13}
    assert all(torch.equal(compiled.copy_state(2)["generator"][key], value)
               for key, value in kept[2]["generator"].items())
    assert not torch.equal(compiled.copy_state(0)["generator"]["net.0.weight"],
                           kept[0]["generator"]["net.0.weight"])
    assert all(torch.isfinite(v).all() for k in (0, 1, 3)
               for v in compiled.copy_state(k)["discriminator"].values())


def test_an_unknown_compile_mode_is_refused_naming_the_modes():
    with pytest.raises(ValueError, match=r"compile must be one of None, 'default', "
                                         r"'reduce-overhead'.*got 'fast'"):
        VectorizedGAN(four_configs()[:2], compile="fast")


# --- bit-equality under every kernel set (slow) ----------------------------------------------

#: the kernel sets a CPU may give: MKL's code paths (MKL_ENABLE_INSTRUCTIONS caps them at a
#: CPU's) and ATen's own vectorized kernels (ATEN_CPU_CAPABILITY); both are read once, at
#: start, so each runs in a fresh process
KERNEL_SETS = [
    {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    {"ATEN_CPU_CAPABILITY": "avx2"},
    {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
]


@pytest.mark.slow  # four fresh processes, ~20 s each on 2 cores
@pytest.mark.parametrize("env", KERNEL_SETS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_bit_equal_under_every_kernel_set(env):
    """The 200-step check of the default-size copies under the kernels of other CPUs: an
    AVX2-only Intel or AMD CPU takes MKL's AVX2 path (which rounds autograd's batched
    weight gradient otherwise than the single layer's), older CPUs SSE4.2."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json, torch; torch.set_num_threads(1); "
            "from tests.test_vectorized import bit_equal_check; "
            "print(json.dumps([torch.backends.cpu.get_cpu_capability(), "
            "bit_equal_check(3, 200, (0, 1, 2)) + bit_equal_check(32, 100, (0, 31))]))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    capability, bad = json.loads(out.stdout.strip().splitlines()[-1])
    if "ATEN_CPU_CAPABILITY" in env:
        assert capability.lower() in (env["ATEN_CPU_CAPABILITY"], "default"), capability
    assert bad == [], (capability, bad[:5])
