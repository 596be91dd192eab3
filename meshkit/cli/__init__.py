"""Layer 6, the ``meshkit`` command line: thin commands over the layers below.

``meshkit X`` lives in ``meshkit/cli/X.py`` (``meshkit review record`` and ``review verify`` in review.py);
what they share, the output consoles, exit codes and the stack argument, in common.py. Each command reads its
arguments, calls the layer that does the work and prints what it returns: :mod:`meshkit.mesh.checks` and
:mod:`meshkit.rollout.summary` (check), :mod:`meshkit.rollout.plan` (plan), :mod:`meshkit.rollout.edit`
(step), :mod:`meshkit.mesh.render` (render), :mod:`meshkit.rollout.draw` and :mod:`meshkit.metrics.live` (graph,
watch), and the engine layer for the commands that run Pulumi: :mod:`meshkit.engine.unlock`,
:mod:`meshkit.engine.step` (up), :mod:`meshkit.engine.guard` (guard), :mod:`meshkit.engine.reviewed` (review).
"""

import typer

from meshkit.cli import check, graph, guard, plan, render, review, step, unlock, up, watch

app = typer.Typer(
    help="Istio rollouts as code: check, plan, step, render and graph the stacks in stacks/Pulumi.<stack>.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# One by one, so that this order is the order of `meshkit --help`.
app.command()(check.check)
app.command()(plan.plan)
app.command()(step.step)
app.command()(render.render)
app.command()(graph.graph)
app.command()(watch.watch)
app.command()(guard.guard)
app.command()(unlock.unlock)
app.command()(up.up)
app.add_typer(review.review_app, name="review")

__all__ = ["app", "main"]


def main() -> None:
    app()
