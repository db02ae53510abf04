"""The periodic jobs' schedules."""

import itertools

from sn_tf.config import make_config
from sn_tf.periodic import Schedule, checkpoint_schedule


def test_schedule_due():
  s = Schedule(every=100, last=250)
  assert [t for t in range(1, 301) if s.due(t)] == [100, 200, 250, 300]
  s = Schedule(every=100, last=300, also_every=40)
  assert [t for t in range(1, 301) if s.due(t)] == [40, 80, 100, 120, 160, 200,
                                                    240, 280, 300]


def test_checkpoints_at_each_evaluation_and_every_checkpoint_every():
  for num_steps, eval_every, checkpoint_every in itertools.product(
      (600, 650), (100, 200), (0, 100, 150)):
    c = make_config("minatar:breakout", "/tmp/unused", "minatar",
                    num_steps=num_steps, eval_every=eval_every,
                    checkpoint_every=checkpoint_every, eval_episodes=1)
    schedule = checkpoint_schedule(c)
    for step in range(1, num_steps + 1):
      evaluation = step % eval_every == 0 or step == num_steps
      extra = checkpoint_every and step % checkpoint_every == 0
      assert schedule.due(step) == bool(evaluation or extra), (c, step)
