"""Supervision: grid topology, security checks, review, veto, curtailment, suspension."""
