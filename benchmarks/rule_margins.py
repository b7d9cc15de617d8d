"""How far each model sits from each masking rule's threshold: the measurement behind the
thresholds in docs/masking.md, taken on a store's real models (not on the controls the rules must
pass). For every model and budget it prints the statistic each rule compares with its threshold.

    python benchmarks/rule_margins.py --out STORE [--dataset mnist-5k]
"""
from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the store to read")
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args()

    from bench.assess.assessment import assess
    from bench.assess.rules import _compare, is_ce_family, is_iterative_gradient, is_logit_family
    from bench.store.records import ResultSet
    from bench.store.artifacts import Store

    assessments = assess(ResultSet.from_store(Store(args.out), args.dataset))
    header = (f"{'model':<44} {'budget':<10} {'R1 pgd−fgsm':>12} {'R2 wb−bb':>9} {'R6 ce−logit':>12} "
              f"{'R8 claim−worst':>15} {'R7 zeroDLR':>10} {'R7 sat':>7} {'R7 L1×':>7}  verdict")
    print(header)
    print("thresholds:" + " " * 44 + f"{'> 2.0':>12} {'> 0.2':>9} {'> 20.0':>12} {'> 20.0':>15} {'> 10%':>10} "
          f"{'> 50%':>7} {'> 10':>7}")
    for model_id, m in sorted(assessments.items(), key=lambda kv: (kv[1].info.defense, kv[0])):
        label = f"{m.info.defense} {model_id[:8]}"
        p, ref = m.probes, m.reference_probes
        probes = (f"{100 * p.zero_dlr_grad_share:>9.1f}% {100 * p.saturated_share:>6.1f}% "
                  f"{(p.logit_l1_median / ref.logit_l1_median if ref else float('nan')):>7.1f}") if p else ""
        for (norm, eps), t in m.threats.items():
            def gap(high, low):
                return f"{100 * _compare(high, low, 0).gap:.1f}" if high is not None and low is not None else "—"

            single = t.strongest(lambda a: a.info.role == "gradient" and a.info.single_step)
            iterative = t.strongest(lambda a: is_ce_family(a) and a.info.loss == "ce")
            black = t.strongest(lambda a: a.info.role in ("black-box", "transfer"))
            white = t.strongest(is_iterative_gradient)
            ce, logit = t.strongest(is_ce_family), t.strongest(is_logit_family)
            claim = t.claimed
            claim_gap = f"{100 * _compare(claim, t.worst_survived, 0).gap:.1f}" if claim is not None else "—"
            print(f"{label:<44} {norm + ' ' + format(eps, 'g'):<10} {gap(iterative, single):>12} {gap(white, black):>9} "
                  f"{gap(ce, logit):>12} {claim_gap:>15} {probes}  {m.diagnosis.verdict}")


if __name__ == "__main__":
    main()
