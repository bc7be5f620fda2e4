"""Settings, resolved once with their source: paths, keys, the config file.

- `loader`: the TOML file checked value by value into a `Settings`;
- `paths`: where the config, ledger and key files live;
- `keys`: the owner-only key store;
- `tomlpos`: which line of the file each key sits on, for errors that name it.
"""
