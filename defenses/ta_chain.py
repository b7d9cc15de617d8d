"""Teacher-assistant distillation chains.

teacher → assistant(s) → student, each link distilled from the one before at temperature T with
the TAKD loss (1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)) (Mirzadeh et al. 2020).
Two uses:
- teacher-assistant defensive distillation (Mandal & Guo, arXiv 2305.08076): every link the same
  architecture and T, one assistant; the default here;
- TAKD model compression: decreasing sizes, e.g. `--set chain=resnet18,papernot-cifar,...`.
Each link is its own DAG node. The first link, the teacher, is `vanilla` trained at T, the same
node as defensive distillation's teacher whenever their configs agree.
"""
from __future__ import annotations

from dataclasses import dataclass


from bench.core.errors import BenchInputError
from defenses.base import Defense, Requirement, TrainContext, TrainingConfig, positive, unit_interval
from defenses.kd import takd_loss
from defenses.perturb import eval_logits


class TAChain(Defense):
    """teacher → assistant(s) → student, each link distilled at temperature T (TAKD loss)."""

    name = "ta-chain"
    description = "teacher -> assistant(s) -> student distillation chain at temperature T (Mandal & Guo; TAKD)"

    @dataclass(frozen=True)
    class Config(TrainingConfig):
        """Mandal & Guo 2023 (arXiv 2305.08076): teacher, one assistant and student share the
        architecture and T; T = 100 as in Papernot's defensive distillation, which their chain
        extends; α = 1 (the student learns from soft labels only, as in defensive distillation).
        chain: comma-separated architectures teacher,...,student (empty: the run's architecture at
        every link, `assistants` + 2 links); TAKD's example chains shrink, e.g. ResNet110 → ResNet20 →
        ResNet8 (Mirzadeh et al. 2020). Every link starts from the same seeded initialization (the
        paper starts all from the same 1-epoch model). Optimisation: see TrainingConfig."""

        temperature: float = 100.0
        alpha: float = 1.0
        assistants: int = 1
        chain: str = ""

        def __post_init__(self):
            super().__post_init__()
            positive(self.temperature, "temperature")
            unit_interval(self.alpha, "alpha")
            if self.assistants < 0:
                raise BenchInputError(f"assistants must be >= 0, got {self.assistants}")
            if self.chain and len(self.links()) < 2:
                raise BenchInputError(f"chain needs at least a teacher and a student, got {self.chain!r}")

        def links(self) -> list[str]:
            return [a.strip() for a in self.chain.split(",") if a.strip()]

    def arch(self, cfg: Config, run_arch: str) -> str:
        return cfg.links()[-1] if cfg.chain else run_arch

    def requires(self, cfg: Config):
        links = cfg.links()
        n = len(links) if links else cfg.assistants + 2
        before = links[-2] if links else None
        if n == 2:  # the previous link is the teacher: vanilla trained at T
            return [Requirement("teacher", "vanilla", {**cfg.training_fields(), "temperature": cfg.temperature},
                                arch=before)]
        previous = {**cfg.training_fields(), "temperature": cfg.temperature, "alpha": cfg.alpha,
                    "chain": ",".join(links[:-1]), "assistants": n - 3}
        return [Requirement("teacher", self.name, previous, arch=before)]

    def train(self, cfg: Config, ctx: TrainContext, upstream):
        teacher = upstream["teacher"].eval()
        student = ctx.create_model()

        def loss_fn(m, x, y):
            logits = m(x)
            return takd_loss(logits, eval_logits(teacher, x), y, cfg.temperature, cfg.alpha), logits

        return ctx.fit(student, loss_fn, cfg.optim())

    def label(self, cfg: Config) -> str:
        n = len(cfg.links()) if cfg.chain else cfg.assistants + 2
        return f"{self.name} ({n} links, T={cfg.temperature:g})" if n != 3 else f"{self.name} (T={cfg.temperature:g})"
