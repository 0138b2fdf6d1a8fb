"""Registers ``flappy_dqn/FlappyBird-v0`` with Gymnasium.

Gymnasium 1.x no longer loads plugins from package entry points, so the
registration runs when ``flappy_dqn`` is imported; without an import,
``gymnasium.make("flappy_dqn:flappy_dqn/FlappyBird-v0")`` imports it.
"""

import gymnasium

#: The environment's Gymnasium id.
ENV_ID = "flappy_dqn/FlappyBird-v0"


def register_envs() -> None:
    """Registers :data:`ENV_ID` (single env and native vector env) once."""
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="flappy_dqn.env:FlappyBirdEnv",
        vector_entry_point="flappy_dqn.vector:FlappyBirdVectorEnv",
    )
