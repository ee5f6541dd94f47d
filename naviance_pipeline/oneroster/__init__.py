"""Domain core: the Naviance OneRoster profile, lenient reading, repair, rules, Pandera schemas,
class year, strict writing, manifest and ZIP. Plain functions from bytes/frames to frames and
findings; no Dagster imports here (docs/architecture.md, The layers)."""
