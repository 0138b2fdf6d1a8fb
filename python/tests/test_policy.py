"""The int8 policy from Python: its Q checksum over whole episodes equals
firmware-sim's; bad files and bad observations raise clear errors."""

import json
import subprocess

import numpy as np
import pytest

import flappy_dqn
from conftest import FNV_OFFSET, REFERENCE, binary, fnv_q

BLOB = REFERENCE / "policy.bin"


@pytest.mark.parametrize("seed,cap", [(7, 25), (flappy_dqn.TEST_SEED + 3, 15)])
def test_the_q_checksum_of_an_episode_equals_firmware_sim(seed, cap):
    sim = json.loads(subprocess.run(
        [binary("firmware-sim"), "--blob", BLOB, "--episodes", "1", "--seed", str(seed),
         "--max-score", str(cap), "--json"], check=True, capture_output=True, text=True).stdout)
    policy = flappy_dqn.Policy.from_file(BLOB)
    env = flappy_dqn.FlappyBirdEnv(max_score=cap)
    obs, _ = env.reset(seed=seed)
    h, decisions = FNV_OFFSET, 0
    while True:
        q = policy.q_values(obs)
        assert q.dtype == np.int32 and q.shape == (2,)
        h = fnv_q(h, q)
        decisions += 1
        obs, _, term, trunc, info = env.step(policy.act(obs))
        if term or trunc:
            break
    assert (f"{h:016x}", decisions, info["score"]) == (sim["checksum"], sim["decisions"], sim["scores"][0])


def test_batches_singles_and_packed_bits_agree():
    policy = flappy_dqn.Policy.from_file(BLOB)
    assert (policy.arch, policy.blob_bytes) == ("compact", BLOB.stat().st_size)
    _, stacks = flappy_dqn.read_recording(REFERENCE / "frames.rec")
    batch = stacks[::97]
    q = policy.q_values(batch)
    assert q.shape == (len(batch), 2)
    for i, s in enumerate(batch):
        assert np.array_equal(policy.q_values(s), q[i])
        assert policy.act(s) == int(q[i, 1] > q[i, 0])
    assert np.array_equal(policy.act(batch), (q[:, 1] > q[:, 0]).astype(np.int64))
    assert np.array_equal(policy.q_values(np.packbits(batch, axis=-1)), q)
    # A non-contiguous view is read in its logical order.
    assert np.array_equal(policy.q_values(stacks[:40:2]), policy.q_values(stacks[:40:2].copy()))


def test_bad_blobs_raise_blob_error_with_the_parsers_message(tmp_path):
    good = BLOB.read_bytes()
    cases = {
        "empty": b"",
        "text": b"not a policy blob at all",
        "truncated": good[: len(good) // 2],
        "flipped": good[:1000] + bytes([good[1000] ^ 4]) + good[1001:],
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(flappy_dqn.BlobError) as e:
            flappy_dqn.Policy.from_file(p)
        assert str(p) in str(e.value) and len(str(e.value)) > len(str(p)) + 5, name
        with pytest.raises(flappy_dqn.BlobError):
            flappy_dqn.Policy.from_bytes(data)
    assert issubclass(flappy_dqn.BlobError, ValueError)
    with pytest.raises(OSError, match="nope"):
        flappy_dqn.Policy.from_file(tmp_path / "nope.bin")


def test_bad_observations_raise_clear_errors():
    policy = flappy_dqn.Policy.from_file(BLOB)
    ok = np.zeros((4, 80, 80), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        policy.q_values(ok.astype(np.float32))
    with pytest.raises(TypeError, match="uint8"):
        policy.act([[0]])
    for shape in ((80, 80), (3, 80, 80), (4, 80, 79), (1, 1, 4, 80, 80)):
        with pytest.raises(ValueError, match="shape"):
            policy.q_values(np.zeros(shape, np.uint8))
    bad = ok.copy()
    bad[2, 5, 7] = 255
    with pytest.raises(ValueError, match="0 or 1"):
        policy.q_values(bad)
    assert policy.q_values(np.zeros((0, 4, 80, 80), np.uint8)).shape == (0, 2)
