"""Scene 6, backward diffusion (bonus exercise): from noise to images with x̂_0(x_t, t).

    x_T ~ N(0, I),   x_{t-1} ~ p(x_{t-1} | x_t) = q(x_{t-1} | x_t, x_0 = x̂_0(x_t, t))

The model is a trained image run's (lecture_data.lecture_source: `vdm render --run RUN`, else
the newest image run under runs/), sampling with the run's own schedule, named on screen.
Without an image run the screen says so in one line and the lecture's 2-D model samples
instead (animations.model2d: a 2-D run given with --run, else a small model of the gmm ring
trained while rendering): its cloud of x_t beside its x̂_0, over the exact q(x_t).
Every frame is a row of vdm.sample.sample(..., return_chain=True) (vdm.cloud.backward_cloud for points).

Render: manim -pql animations/backward_diffusion.py BackwardDiffusion
"""

from __future__ import annotations

import torch
from manim import DOWN, LEFT, RIGHT, UP, FadeIn, Group, LaggedStart, Title, ValueTracker, VGroup, linear

from animations.cloud2d import CloudPanel
from animations.latex import schedule_tex
from animations.lecture_data import lecture_source
from animations.lecture_scene import LectureScene, cut, play_derivation
from animations.mobjects.images import pixel_image, set_pixels
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.text import MAX_WIDTH, label, labels, one_line, tex
from animations.palette import XHAT, XT
from vdm.sample import sample

SWEEP_WORDS = ("One sampling run from t = T down to 0. Top: the current x_t. Bottom: the network's guess of x_0 at "
               "that step.")
WATCH_WORDS = "Watch t fall from T to 0: early guesses are blurry averages; they sharpen as t falls. "
N_IMAGES = 4
STRIP_FRACTIONS = (1.0, 0.6, 0.4, 0.25, 0.1, 0.0)  # of log(T + 1): log-spaced steps, most near t = 0
SWEEP_SECONDS = 12.0


def strip_steps(T: int) -> list[int]:
    """t = (T + 1)^f - 1 for f in STRIP_FRACTIONS, rounded, each once (for T below about 60, 0.1 and 0.0
    both round to t = 0: the strip would show x_0 twice)."""
    return list(dict.fromkeys(int(round((T + 1) ** f - 1)) for f in STRIP_FRACTIONS))


def final_share(chain, steps: list[int]) -> list[float]:
    """How much of the final sample each step's x_t already holds: corr(x_t, x_0)^2 over every value of the
    chain's samples (pixels, or points' coordinates) at once; 0 for pure noise, 1 at t = 0."""
    end = chain.x[0].double().flatten()
    out = []
    for s in steps:
        now = chain.x[s].double().flatten()
        c = torch.corrcoef(torch.stack([now, end]))[0, 1]
        out.append(float(c) ** 2 if torch.isfinite(c) else 0.0)
    return out


def strip_words(steps: list[int], share: list[float]) -> str:
    """The strip's notes from its numbers: each step's final_share, and between which two shown steps the most
    of the picture appears."""
    listed = ", ".join(f"t = {s}: {v:.2f}" for s, v in zip(steps, share))
    gains = [b - a for a, b in zip(share, share[1:])]
    k = max(range(len(gains)), key=gains.__getitem__)
    return (f"One chain at a few steps, spaced logarithmically in t. How much of the final sample each step already "
            f"holds, as the squared correlation of x_t with it: {listed}. The most appears between t = {steps[k]} and "
            f"t = {steps[k + 1]}, a gain of {gains[k]:.2f}: where that happens depends on the schedule.")


def backward_chain(n: int = N_IMAGES, seed: int = 0):
    """(schedule, Chain, name of the denoiser, whether it is the 2-D model, the presenter's words on it): the whole
    sampling chain, computed once.

    With an image run, n images; without one, the 2-D model's cloud (animations.model2d.backward_paths)."""
    src = lecture_source()
    if src.denoiser is not None:
        _, chain = sample(src.denoiser, src.schedule, n, seed=seed, return_chain=True)
        return src.schedule, chain, src.note, False, src.detail
    from animations import model2d

    pm = model2d.point_model()
    _, chain = model2d.backward_paths()
    return (pm.schedule, chain, r"no image run, so the 2-D model samples here: " + pm.what, True,
            "There is no trained image run, so the lecture's 2-D model samples instead: points, not images. "
            + pm.detail)


class BackwardDiffusion(LectureScene):
    def construct(self):
        self.schedule, self.chain, self.denoiser_label, self.points, self.denoiser_words = backward_chain()
        self.title = Title("Backward diffusion: sampling from noise", font_size=38)
        self.add(self.title)
        self.section_sampler()
        self.section_denoising()
        self.section_strip()

    def section_sampler(self):
        self.next_section("the sampler")
        rows = [
            (r"x_T", r"\sim", r"\mathcal{N}(0, \mathbf{I})"),
            (r"x_{t-1}", r"\sim", (r"p_\theta(x_{t-1} \mid x_t) =",
                                  r"q\!\left(x_{t-1} \mid x_t,\ x_0 = \hat{x}_0(x_t, t)\right)")),
            (None, "=", (r"\mathcal{N}\!\left(x_{t-1};\ \mu_q(x_t, \hat{x}_0),\ \sigma_q^2(t)\,\mathbf{I}\right),",
                         r"\qquad t = T, \dots, 1")),
        ]
        notes = [r"start where the forward chain ends: pure noise, the prior $p(x_T)$",
                 r"each step: the posterior of exercise 4 with the network's $\hat{x}_0$ in place of the unknown $x_0$",
                 r"mean and variance in closed form; $T$ steps down to $x_0$, fresh noise at every step but the last"]
        say = ["Sampling runs the chain backwards. Start where the forward chain ends: pure Gaussian noise, the prior.",
               "Each step back is the posterior of exercise 4, with the network's guess of x_0 in place of the x_0 "
               "we do not have. This is exactly the decoder step the ELBO trained.",
               "Its mean and variance are in closed form. T steps take us down to x_0, with fresh noise at every "
               "step but the last."]
        lines = play_derivation(self, rows, notes, say=say, below=self.title, font_size=34, buff=0.4,
                          focus=[None, r"q\!\left(x_{t-1} \mid x_t,\ x_0 = \hat{x}_0(x_t, t)\right)",
                                 r"\qquad t = T, \dots, 1"])
        who = one_line(self.denoiser_label, size=24).next_to(lines, DOWN, buff=0.7)
        self.play(FadeIn(who))
        self.pause(3, "The model that samples in the next pictures. " + self.denoiser_words)
        cut(self, self.title)

    def section_denoising(self):
        self.next_section("x_t and x̂_0 as t goes to 0")
        if self.points:
            return self.denoising_cloud()
        T = self.chain.T
        u = ValueTracker(1.0)  # t = (T + 1)^u - 1: log-spaced, slowing down towards t = 0
        n = self.chain.x.shape[1]

        def step() -> int:
            return max(0, min(T, int(round((T + 1) ** u.get_value() - 1))))

        top = [pixel_image(self.chain.x[T, i], height=1.9) for i in range(n)]
        bottom = [pixel_image(self.chain.x0_hat[T, i], height=1.9) for i in range(n)]
        Group(*top).arrange(RIGHT, buff=0.3).shift(UP * 0.9 + RIGHT * 0.9)
        Group(*bottom).arrange(RIGHT, buff=0.3).shift(DOWN * 1.6 + RIGHT * 0.9)
        for i, m in enumerate(top):
            m.add_updater(lambda m, i=i: set_pixels(m, self.chain.x[step(), i]))
        for i, m in enumerate(bottom):
            m.add_updater(lambda m, i=i: set_pixels(m, self.chain.x0_hat[step(), i]))
        row_top = tex(r"x_t", font_size=44).next_to(top[0], LEFT, buff=0.5)
        row_bottom = tex(r"\hat{x}_0(x_t, t)", font_size=36).next_to(bottom[0], LEFT, buff=0.3)
        self.num_t = LiveNumber(T, "{:.0f}", 36)
        t_label = VGroup(tex("t =", font_size=36), self.num_t).arrange(RIGHT, buff=0.15)
        t_label.next_to(self.title, DOWN, buff=0.2)
        self.num_t.add_updater(lambda m: m.set_value(step()))
        sched = label("schedule: " + schedule_tex(self.schedule), size=22).to_edge(DOWN, buff=0.25)
        self.play(FadeIn(Group(*top, *bottom)), FadeIn(row_top), FadeIn(row_bottom), FadeIn(t_label), FadeIn(sched))
        self.pause(1, SWEEP_WORDS)
        self.play(u.animate.set_value(0.0), run_time=SWEEP_SECONDS, rate_func=linear)
        for m in (*top, *bottom, self.num_t):
            m.clear_updaters()
        self.top, self.bottom, self.t = top, bottom, u
        self.pause(2, WATCH_WORDS + "At t = 0 the sample and the final guess coincide: a new image drawn from the "
                      "model.")
        cut(self, self.title)

    def section_strip(self):
        self.next_section("one chain, step by step")
        T = self.chain.T
        steps = strip_steps(T)
        if self.points:
            return self.strip_cloud(steps)
        images = [pixel_image(self.chain.x[s, 0], height=1.6) for s in steps]
        Group(*images).arrange(RIGHT, buff=0.35).shift(DOWN * 0.2)
        tags = VGroup(*labels(*[f"t={s}" for s in steps], size=28, math=True))
        for lab, img in zip(tags, images):
            lab.next_to(img, DOWN, buff=0.15)
        self.play(LaggedStart(*[FadeIn(img) for img in images], lag_ratio=0.3), FadeIn(tags), run_time=2)
        self.strip_steps = steps
        self.pause(2, strip_words(steps, final_share(self.chain, steps)))

    # -- without an image run: the 2-D model's cloud ------------------------------------------------------
    def exact_density(self, t: int):
        """q(x_t) of the 2-D data's mixture on a grid (vdm.cloud.density_grid), or None for data without one."""
        from animations import model2d
        from vdm.cloud import density_grid

        mix = model2d.point_model().mixture
        return None if mix is None else density_grid(mix, self.schedule, t, 96)

    def denoising_cloud(self):
        """x_t (over the exact q(x_t)) and x̂_0(x_t, t) (over the data's q(x_0)) of every sample as t goes to 0."""
        T = self.chain.T
        u = ValueTracker(1.0)

        def step() -> int:
            return max(0, min(T, int(round((T + 1) ** u.get_value() - 1))))

        left, right = CloudPanel(4.6), CloudPanel(4.6)
        Group(left, right).arrange(RIGHT, buff=1.2).shift(DOWN * 0.45)
        # x̂_0 at row i is the model's estimate at x_{t_i} (row 0 repeats the sample)
        top = left.cloud(self.chain.x[T], XT)
        bottom = right.cloud(self.chain.x0_hat[T], XHAT)
        q_t = self.exact_density(T)
        shades = []
        if q_t is not None:
            shade_t = left.shading(q_t)
            shades = [shade_t, right.shading(self.exact_density(0))]
        heads = VGroup(tex(r"x_t", font_size=40), tex(r"\hat{x}_\theta(x_t, t)", font_size=36))
        heads[0].next_to(left, UP, buff=0.15)
        heads[1].next_to(right, UP, buff=0.15)
        self.num_t = LiveNumber(T, "{:.0f}", 36)
        t_label = VGroup(tex("t =", font_size=36), self.num_t).arrange(RIGHT, buff=0.15)
        t_label.move_to(Group(left, right)).align_to(heads, UP)
        self.num_t.add_updater(lambda m: m.set_value(step()))
        note = (r"shading: the exact $q(x_t)$ (left) and the data's $q(x_0)$ (right); " if shades else "")
        sched = one_line(note + rf"{self.chain.x.shape[1]:,} samples; schedule " + schedule_tex(self.schedule),
                         size=22).to_edge(DOWN, buff=0.25)
        self.play(FadeIn(Group(left, right, *shades, top, bottom)), FadeIn(heads), FadeIn(t_label), FadeIn(sched))
        self.pause(1, SWEEP_WORDS)
        if shades:
            shades[0].add_updater(lambda m: m.show(self.exact_density(step())))
        top.add_updater(lambda m: m.show(self.chain.x[step()]))
        bottom.add_updater(lambda m: m.show(self.chain.x0_hat[max(step(), 1)]))
        self.play(u.animate.set_value(0.0), run_time=SWEEP_SECONDS, rate_func=linear)
        for m in (top, bottom, self.num_t, *shades):
            m.clear_updaters()
        self.top, self.bottom, self.t = [top], [bottom], u
        self.pause(2, WATCH_WORDS + "At t = 0 the points have gathered where the data lie: the cloud is a sample "
                      "from the model.")
        cut(self, self.title)

    def strip_cloud(self, steps):
        """The cloud of samples at a few t, log-spaced, from x_T to x_0."""
        side = min(2.1, (MAX_WIDTH - 0.3 * (len(steps) - 1)) / len(steps))
        panels = [CloudPanel(side) for _ in steps]
        Group(*panels).arrange(RIGHT, buff=0.3).shift(DOWN * 0.2)
        clouds = [p.cloud(self.chain.x[s], XT) for p, s in zip(panels, steps)]
        tags = VGroup(*labels(*[f"t={s}" for s in steps], size=28, math=True))
        for lab, p in zip(tags, panels):
            lab.next_to(p, DOWN, buff=0.15)
        self.play(LaggedStart(*[FadeIn(Group(p, cl)) for p, cl in zip(panels, clouds)], lag_ratio=0.3),
                  FadeIn(tags), run_time=2)
        self.strip_steps = steps
        self.strip_clouds = clouds
        self.pause(2, strip_words(steps, final_share(self.chain, steps)))
