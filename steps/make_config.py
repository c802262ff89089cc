#!/usr/bin/env python3
"""Write the effective experiment config: a base YAML plus KEY=VALUE overrides, checked against the schema.

Usage: steps/make_config.py [--set KEY=VALUE ...] BASE_YAML OUT_YAML
       steps/make_config.py --get KEY CONFIG_YAML        (print one value, e.g. model.frontend)
       steps/make_config.py --training-table [--set KEY=VALUE ...] CONFIG_YAML
                                  (print the table stage 2 reads: wav.scp, or feats.scp of stage 1)
e.g.   steps/make_config.py --set train.augment.musan_dir=/abs/data --set train.epochs=40 \
           conf/ecapa_c1024.yaml exp/ecapa_c1024/conf/train.yaml
Values are YAML (true, 0.5, [3, 7], a path); an unknown key or a wrong type is an error naming it.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override (repeatable)")
    parser.add_argument("--get", default=None, metavar="KEY", help="print the value of KEY in the one config given")
    parser.add_argument("--training-table", action="store_true",
                        help="print wav.scp or feats.scp: the table stage 2 reads with the one config given")
    parser.add_argument("configs", nargs="+", metavar="YAML")
    args = parser.parse_args()

    from pyfunc.config import load_config, training_table
    from pyfunc.config_overrides import get_value, read_config_with_overrides, write_effective_config
    from pyfunc.errors import ConfigError

    if args.training_table:
        if len(args.configs) != 1 or args.get is not None:
            raise ConfigError("--training-table takes exactly one config file (and --set overrides)")
        print(training_table(read_config_with_overrides(args.configs[0], args.set)))
        return

    if args.get is not None:
        if len(args.configs) != 1 or args.set:
            raise ConfigError("--get takes exactly one config file and no --set")
        print(get_value(load_config(args.configs[0]), args.get))
        return
    if len(args.configs) != 2:
        raise ConfigError("give BASE_YAML and OUT_YAML")
    write_effective_config(args.configs[0], args.configs[1], args.set)


if __name__ == "__main__":
    run_main(main)
