"""Layer 3, a rollout step: pure functions over two states of a stack, the deployed one and the declared one.

What a deployment recorded (:mod:`~meshkit.rollout.summary`) and the rules of a step against it, the plan a
reviewer reads (:mod:`~meshkit.rollout.plan`), drift (:mod:`~meshkit.rollout.drift`), the drawing
(:mod:`~meshkit.rollout.draw`), a step written into the stack file (:mod:`~meshkit.rollout.edit`,
:mod:`~meshkit.rollout.splice`) and what a step touches (:mod:`~meshkit.rollout.step_scope`).
"""
