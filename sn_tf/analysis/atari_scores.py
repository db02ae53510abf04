"""Atari-57 random-agent and human scores for human-normalised scores (HNS).

``HNS = (score - random) / (human - random)``: 0 is the random agent's
score, 1 the human's.

The numbers are the standard Atari-57 baselines of Mnih et al. (2015, Nature
DQN) and Badia et al. (2020, Agent57), as reproduced in DeepMind's DQN Zoo,
``google-deepmind/dqn_zoo``, file ``dqn_zoo/atari_data.py`` (``_ATARI_DATA``,
same table in ``google-deepmind/sketch_dqn``, ``dqn_zoo/atari_data.py``).
There, both agents' scores are undiscounted returns averaged over at least 3
episodes, each starting after 1..30 random no-ops and capped at 108,000
frames; "human" is a professional human game tester. Only the numbers are
transcribed here, keyed by the CamelCase ``<Game>`` of gymnasium's
``ALE/<Game>-v5`` ids instead of ALE's snake_case ROM ids.

Cross-check against Google's tables in ``google-research/google-research``,
``bigger_better_faster/bbf/eval_run_experiment.py`` (random for all 57 games,
human for 55: no Defender or Surround) and ``google-research/reincarnating_rl``,
``reincarnating_rl/atari_scores.py`` (random only): every value agrees except
Video Pinball's random score, 16256.9 in DQN Zoo (the Nature DQN value) and
0.0 in both Google tables. DQN Zoo's value is kept here, as transcribed.
"""

from typing import Dict, Tuple

# Game -> (random, human).
ATARI_57: Dict[str, Tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "Asteroids": (719.1, 47388.7),
    "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5),
    "Berzerk": (123.7, 2630.4),
    "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9),
    "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4),
    "Enduro": (0.0, 860.5),
    "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4),
    "Hero": (1027.0, 30826.4),
    "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6),
    "NameThisGame": (2292.3, 8049.0),
    "Phoenix": (761.4, 7242.6),
    "Pitfall": (-229.4, 6463.7),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "Riverraid": (1338.5, 17118.0),
    "RoadRunner": (11.5, 7845.0),
    "Robotank": (2.2, 11.9),
    "Seaquest": (68.4, 42054.7),
    "Skiing": (-17098.1, -4336.9),
    "Solaris": (1236.3, 12326.7),
    "SpaceInvaders": (148.0, 1668.7),
    "StarGunner": (664.0, 10250.0),
    "Surround": (-10.0, 6.5),
    "Tennis": (-23.8, -8.3),
    "TimePilot": (3568.0, 5229.2),
    "Tutankham": (11.4, 167.6),
    "UpNDown": (533.4, 11693.2),
    "Venture": (0.0, 1187.5),
    # Random 16256.9 as in DQN Zoo; Google's BBF and Reincarnating RL tables
    # give 0.0 (see the module docstring).
    "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}


def has_human_score(game: str) -> bool:
  """Whether ``game`` (e.g. ``"Pong"``) has random and human scores here."""
  return game in ATARI_57


def human_normalized_score(game: str, score: float) -> float:
  """The human-normalised score ``(score - random) / (human - random)``.

  Args:
    game: CamelCase game name as in ``ALE/<Game>-v5``, e.g. ``"Pong"``.
    score: an undiscounted episode return (or a mean of them) in ``game``.

  Returns:
    0.0 at the random agent's score, 1.0 at the human's.

  Raises:
    ValueError: ``game`` is not one of the 57 games of ``ATARI_57``.
  """
  if not has_human_score(game):
    raise ValueError(f"no random/human scores for Atari game {game!r}; "
                     f"allowed: {', '.join(sorted(ATARI_57))}")
  random, human = ATARI_57[game]
  return (float(score) - random) / (human - random)
