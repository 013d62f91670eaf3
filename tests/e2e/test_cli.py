"""End-to-end tests of the command line: --version, --help, `check`, `${ENV}` substitution and
`config-docs`. Runs the real binary; standard library only."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import support  # noqa: E402

BIN = support.BIN
SOURCE_DIR = os.path.abspath(support.SOURCE_DIR)


def run(args, env=None, cwd=None, timeout=30):
    """Runs the binary; returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    # Variables the tests set must not leak in from the caller's environment.
    for k in list(full_env):
        if k.startswith("SYTEST_"):
            del full_env[k]
    full_env.update(env or {})
    p = subprocess.run([BIN] + args, capture_output=True, text=True, env=full_env, cwd=cwd,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="switchyard-cli-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # --version / --help ---------------------------------------------------------------------
    def test_version(self):
        rc, out, err = run(["--version"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), r"^switchyard \d+\.\d+\.\d+")

    def test_help(self):
        rc, out, err = run(["--help"])
        self.assertEqual(rc, 0, err)
        text = out + err
        self.assertIn("run", text)
        self.assertIn("check", text)
        self.assertIn("config-docs", text)

    def test_no_subcommand_is_an_error(self):
        rc, out, err = run([])
        self.assertNotEqual(rc, 0)

    # check ----------------------------------------------------------------------------------
    def test_check_shipped_config(self):
        path = os.path.join(SOURCE_DIR, "config", "switchyard.yaml")
        rc, out, err = run(["check", "-c", path], cwd=self.tmp)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK", out)

    def test_check_missing_file(self):
        rc, out, err = run(["check", "-c", os.path.join(self.tmp, "does-not-exist.yaml")])
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot open", out + err)

    def test_check_yaml_syntax_error_has_position(self):
        path = self.write("syntax.yaml", "data_dir: /tmp/x\nserver:\n  listen: [unclosed\n")
        rc, out, err = run(["check", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertRegex(out + err, re.escape(path) + r":\d+:\d+")

    def test_check_reports_every_error_with_position(self):
        # Each entry: (line, substring that identifies the error on that line).
        text = (
            "data_dir: /tmp/switchyard-cli-never-created\n"   # 1
            "bogus_top: 1\n"                                   # 2  unknown top-level key
            "server:\n"                                        # 3
            "  listen: nothost\n"                              # 4  bad listen address
            "  threads: many\n"                                # 5  wrong type for an integer
            "  idle_timeout: 10 parsecs\n"                     # 6  bad duration
            "  frobnicate: true\n"                             # 7  unknown nested key
            "sources:\n"                                       # 8
            "  - name: web\n"                                  # 9
            "    write_keys: [a]\n"                            # 10
            "  - name: web\n"                                  # 11 duplicate source name
            "    write_keys: [b]\n"                            # 12
            "destinations:\n"                                  # 13
            "  - name: out\n"                                  # 14
            "    type: nosuch\n"                               # 15 unknown destination type
            "  - name: f\n"                                    # 16
            "    type: file\n"                                 # 17
            "    path: /tmp/switchyard-cli-never-created/out\n"  # 18
            "    colour: blue\n"                               # 19 unknown key in a file destination
        )
        path = self.write("many-errors.yaml", text)
        rc, out, err = run(["check", "-c", path])
        self.assertNotEqual(rc, 0, out + err)
        text_out = out + err
        lines = text_out.splitlines()

        def find(pattern, lines_ok):
            """The error line mentioning `pattern`, with file:line:col and line in lines_ok."""
            for ln in lines:
                if pattern in ln:
                    m = re.match(re.escape(path) + r":(\d+):(\d+): ", ln)
                    self.assertIsNotNone(m, f"error without file:line:col: {ln!r}")
                    self.assertIn(int(m.group(1)), lines_ok, f"wrong line for {pattern!r}: {ln!r}")
                    self.assertGreaterEqual(int(m.group(2)), 1)
                    return ln
            self.fail(f"no error mentioning {pattern!r} in:\n{text_out}")

        find("bogus_top", {2})
        find("frobnicate", {7})
        find("many", {5})
        find("10 parsecs", {6})
        find("nothost", {4})
        find("duplicate source name", {11})
        # Destination-level errors must be reported in the same run as the others, not only
        # once everything else is fixed.
        find("nosuch", {14, 15})
        find("colour", {16, 17, 18, 19})
        m = re.search(r"(\d+) config error", text_out)
        self.assertIsNotNone(m, text_out)
        self.assertGreaterEqual(int(m.group(1)), 8, text_out)
        # Nothing may be created by `check`.
        self.assertFalse(os.path.exists("/tmp/switchyard-cli-never-created"))

    def test_check_destination_errors_alone(self):
        text = (
            "data_dir: /tmp/x\n"
            "destinations:\n"
            "  - name: out\n"
            "    type: nosuch\n"
            "  - name: f\n"
            "    type: file\n"
            "    colour: blue\n"
        )
        path = self.write("dest-errors.yaml", text)
        rc, out, err = run(["check", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertRegex(out + err, re.escape(path) + r":\d+:\d+: .*nosuch")
        self.assertRegex(out + err, re.escape(path) + r":\d+:\d+: .*colour")

    # ${ENV} substitution ---------------------------------------------------------------------
    ENV_CONFIG = (
        "data_dir: ${SYTEST_DATA:-/tmp/switchyard-cli-default}\n"
        "server:\n"
        "  listen: ${SYTEST_LISTEN}\n"
        "  threads: ${SYTEST_THREADS:-2}\n"
    )

    def test_env_substitution_and_default(self):
        path = self.write("env.yaml", self.ENV_CONFIG)
        rc, out, err = run(["check", "--print", "-c", path], env={"SYTEST_LISTEN": "127.0.0.1:4321"})
        self.assertEqual(rc, 0, out + err)
        self.assertIn("listen: 127.0.0.1:4321", out)
        self.assertIn("data_dir: /tmp/switchyard-cli-default", out)

    def test_env_overrides_default(self):
        path = self.write("env.yaml", self.ENV_CONFIG)
        rc, out, err = run(["check", "--print", "-c", path],
                           env={"SYTEST_LISTEN": "127.0.0.1:4321", "SYTEST_DATA": "/tmp/sy-from-env"})
        self.assertEqual(rc, 0, out + err)
        self.assertIn("data_dir: /tmp/sy-from-env", out)
        self.assertNotIn("switchyard-cli-default", out)

    def test_env_value_is_validated(self):
        path = self.write("env.yaml", self.ENV_CONFIG)
        rc, out, err = run(["check", "-c", path],
                           env={"SYTEST_LISTEN": "127.0.0.1:4321", "SYTEST_THREADS": "lots"})
        self.assertNotEqual(rc, 0)
        self.assertRegex(out + err, re.escape(path) + r":4:\d+: .*lots")

    def test_env_unset_without_default_is_an_error(self):
        path = self.write("env.yaml", self.ENV_CONFIG)
        rc, out, err = run(["check", "-c", path])
        self.assertNotEqual(rc, 0, out + err)
        self.assertRegex(out + err, re.escape(path) + r":3:\d+: .*SYTEST_LISTEN")

    def test_shipped_config_uses_env(self):
        path = os.path.join(SOURCE_DIR, "config", "switchyard.yaml")
        rc, out, err = run(["check", "--print", "-c", path],
                           env={"SWITCHYARD_LISTEN": "127.0.0.1:18080",
                                "SWITCHYARD_DATA_DIR": "/tmp/sy-shipped"}, cwd=self.tmp)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("listen: 127.0.0.1:18080", out)
        self.assertIn("data_dir: /tmp/sy-shipped", out)
        # Secrets are redacted when printed.
        self.assertNotIn("demo-write-key", out)

    def test_run_refuses_bad_config(self):
        path = self.write("bad-run.yaml", "data_dir: /tmp/x\nbogus: 1\n")
        rc, out, err = run(["run", "-c", path], timeout=20)
        self.assertNotEqual(rc, 0)
        self.assertRegex(out + err, re.escape(path) + r":2:\d+: .*bogus")

    # config-docs -----------------------------------------------------------------------------
    def test_config_docs_matches_committed_file(self):
        rc, out, err = run(["config-docs"])
        self.assertEqual(rc, 0, err)
        self.assertIn("server.listen", out)
        doc = os.path.join(SOURCE_DIR, "docs", "configuration.md")
        # A missing file is a failure, not a skip: regenerate it with
        #   build/switchyard config-docs > docs/configuration.md
        self.assertTrue(os.path.isfile(doc),
                        f"{doc} does not exist; generate it with "
                        "`build/switchyard config-docs > docs/configuration.md`")
        with open(doc) as f:
            committed = f.read()
        self.assertEqual(committed, out,
                         "docs/configuration.md is out of date; regenerate it with "
                         "`build/switchyard config-docs > docs/configuration.md`")


if __name__ == "__main__":
    unittest.main()
