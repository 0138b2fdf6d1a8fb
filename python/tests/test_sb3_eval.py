"""scripts/sb3.py's greedy games see what SB3's DQN sees in training: the
0/1 cells scaled to 0/255 by the wrapper, divided by 255 by the policy."""

import importlib.util

import numpy as np
import torch

import flappy_dqn
from conftest import ROOT

spec = importlib.util.spec_from_file_location("sb3_script", ROOT / "scripts" / "sb3.py")
sb3_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sb3_script)


def test_greedy_q_equals_the_policy_on_the_training_observation():
    from stable_baselines3 import DQN

    torch.manual_seed(0)
    wrapped = sb3_script.Scale255(flappy_dqn.FlappyBirdEnv())
    model = DQN("CnnPolicy", wrapped, buffer_size=100, learning_starts=0, device="cpu", seed=0)
    vec = flappy_dqn.FlappyBirdVectorEnv(8)
    obs, _ = vec.reset(seed=list(range(8)))
    for _ in range(40):  # pipes and a moved bird in view
        obs, *_ = vec.step(np.zeros(8, np.int64))
    with torch.no_grad():
        ours = sb3_script.greedy_q(model, obs)
        # SB3 on the observation its training env gives it (0/255 bytes).
        theirs = torch.stack([model.policy.q_net(model.policy.obs_to_tensor(wrapped.observation(o))[0])[0]
                              for o in obs])
        raw = model.policy.q_net(torch.as_tensor(obs, dtype=torch.float32))
    assert torch.allclose(ours, theirs, atol=1e-6)
    # The mistake this guards against: the 0/1 cells fed as floats reach the
    # network divided by 255 once more, and give other Q-values.
    assert not torch.allclose(raw, theirs, atol=1e-3)
    assert np.array_equal(sb3_script.greedy_q(model, obs).argmax(1).numpy(),
                          model.predict(obs * np.uint8(255), deterministic=True)[0])


def test_greedy_scores_play_every_seed_to_its_end():
    cap = 3
    from stable_baselines3 import DQN

    model = DQN("CnnPolicy", sb3_script.Scale255(flappy_dqn.FlappyBirdEnv()), buffer_size=100,
                learning_starts=0, device="cpu", seed=1)
    scores = sb3_script.greedy_scores(model, [5, 6, 7], cap)
    assert len(scores) == 3 and all(0 <= s <= cap for s in scores)
