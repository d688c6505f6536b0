"""Random and human scores of the 57 Atari games, pinned in one table for human-normalised scores; Atari ids.

Source: Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518),
Extended Data Table 2, extended to 57 games by Badia et al. 2020, "Agent57: Outperforming the Atari
Human Benchmark" (ICML), Appendix H, Table "Atari 57 human and random scores". The random score is a
uniform random policy, the human score a professional games tester after two hours of practice, both
under the DQN evaluation protocol (up to 30 no-op starts, 5 minutes = 18,000 agent steps per episode).

This module is deliberately free of heavy imports: envs/factory.py reads it at import time.
"""

from __future__ import annotations

ATARI_SCORE_SOURCE = "human and random scores, Mnih et al. 2015 (Nature) / Badia et al. 2020 (Agent57) appendix"

# game: (random, human)
ATARI_SCORES: dict[str, tuple[float, float]] = {
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
    "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}


def is_atari_id(env_id: str) -> bool:
    """Ids rlsuite's Atari pipeline (envs/atari/) handles: `ALE/<Game>-v5` and `<Game>NoFrameskip-v4`."""
    return (env_id.startswith("ALE/") and env_id.endswith("-v5")) or env_id.endswith("NoFrameskip-v4")


def atari_game_ids(game: str) -> tuple[str, str]:
    """The Gymnasium ids rlsuite's Atari pipeline accepts for `game`: ALE/<Game>-v5 and <Game>NoFrameskip-v4."""
    return f"ALE/{game}-v5", f"{game}NoFrameskip-v4"
