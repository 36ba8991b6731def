"""Opening: what a diffusion model does, in under 30 seconds, with the lecture's 2-D model.

    x_T ~ N(0, I),   x_{t-1} ~ q(x_{t-1} | x_t, x_0 = x̂_θ(x_t, t)),   t = T, ..., 1   (vdm.cloud.backward_cloud)

Fresh Gaussian noise on the left runs backwards through the trained model's chain to t = 0, and lands
on the data, the held-out points shown beside it. The cloud is animations.model2d's (the same model
and draws as the 2-D scene, which shows the whole story at the end of the lecture).

Render: vdm render opening   (or manim -pql animations/opening.py Opening)
"""

from __future__ import annotations

from manim import DOWN, RIGHT, UP, FadeIn, FadeOut, Succession, Title, ValueTracker, VGroup, linear

from animations import model2d as m2
from animations.cloud2d import CloudPanel
from animations.latex import tex_percent
from animations.lecture_scene import LectureScene
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.text import label, one_line, tex
from animations.palette import X0, XT
from vdm.report import percent_with_error

SWEEP_SECONDS = 6.0  # noise to data; with the three held slides the opening stays under 30 s
MAX_SECONDS = 30.0


class Opening(LectureScene):
    def construct(self):
        self.pm = m2.point_model()
        samples, chain = m2.backward_paths()
        x = chain.x  # row t is x_t, from x_T (pure noise) down to x_0 (the samples)
        T = x.shape[0] - 1
        title = Title("What a diffusion model does: noise in, data out", font_size=38)
        self.add(title)
        self.next_section("pure noise")
        left, right = CloudPanel(side=4.6), CloudPanel(side=4.6)
        left.move_to([-3.3, -0.6, 0])
        right.move_to([3.3, -0.6, 0])
        cloud = left.cloud(x[T], XT)
        u = ValueTracker(0.0)

        def t_now() -> int:
            """t = (T + 1)^(1 - u) - 1: log-spaced, as every sweep of the lecture, so the last steps, where the
            clusters form, get as long as the first ones, where the cloud barely changes."""
            return int(round((T + 1) ** (1.0 - u.get_value()) - 1))

        num = LiveNumber(T, "{:.0f}", 34)
        num.add_updater(lambda m: m.set_value(t_now()))
        t_lab = VGroup(tex("t =", font_size=34), num).arrange(RIGHT, buff=0.15).next_to(left, UP, buff=0.15)
        start = one_line(r"$x_T \sim \mathcal{N}(0, \mathbf{I})$: pure noise", size=26).next_to(left, DOWN, buff=0.3)
        self.play(FadeIn(left), FadeIn(cloud), FadeIn(t_lab), FadeIn(start))
        self.pause(1, f"A diffusion model turns noise into data. On the left, {x.shape[1]:,} points of pure Gaussian "
                      f"noise in two dimensions: this is where sampling starts.", hold=1.5)
        self.next_section("the backward chain")
        cloud.add_updater(lambda m: m.show(x[t_now()]))
        step = one_line(r"each step, a trained network removes a little noise", size=26).move_to(start)
        # one caption leaves before the next comes: two sentences cross-fading in one place cannot be read
        self.play(Succession(FadeOut(start), FadeIn(step)), run_time=1.0)
        self.play(u.animate.set_value(1.0), run_time=SWEEP_SECONDS, rate_func=linear)
        cloud.clear_updaters()
        num.clear_updaters()
        cloud.show(x[0])
        self.pause(1, f"Running the chain backwards, {T} small steps, a trained network removes a little noise at "
                      f"each one, and the cloud gathers into shapes. {self.pm.detail}")
        self.next_section("the data")
        held = m2.held_out()  # drawn, and measured below: one load
        data = right.cloud(held, X0)
        data_lab = label("the data it learned from", X0, 28).next_to(right, UP, buff=0.15)
        if self.pm.mixture is not None:  # how close the samples come to the data, measured, not claimed
            got, real = m2.near_modes(x[0]), m2.near_modes(held)
            self.mode_shares = (got, real)
            g, r = percent_with_error(got, len(x[0])), percent_with_error(real, len(held))
            words = (rf"within 3 std of a cluster: {tex_percent(g)} of the samples, {tex_percent(r)} of the data",
                     f"{g.replace(' %', ' percent')} of the samples lie within three standard deviations of one of "
                     f"the clusters, against {r.replace(' %', ' percent')} of the data.")
        else:
            words = (r"the samples at $t = 0$ beside the data", "Compare the samples at t = 0 with the data.")
        end = one_line(words[0], size=24).to_edge(DOWN, buff=0.45)
        self.play(FadeIn(right), FadeIn(data), FadeIn(data_lab), FadeOut(step), FadeIn(end))
        self.pause(1, "On the right, the data the model was trained on. " + words[1] + " This lecture derives why "
                      "this works: the forward chain that destroys data, the bound we train on, and the loss it "
                      "leads to.")
        self.noise, self.samples = x[T], x[0]
