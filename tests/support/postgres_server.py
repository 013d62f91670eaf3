"""A private PostgreSQL server for tests and benchmarks: initdb in a temp dir, pg_ctl start on a
free loopback port, removed afterwards. Runs the server as the `postgres` user (or `nobody`)
when started as root, since PostgreSQL refuses to run as root.

    pg = PostgresServer(); pg.start()
    pg.query("SELECT 1")            # -> [["1"]] (every value as text, NULL as "")
    pg.dsn                          # libpq conninfo for the daemon's config
    pg.stop(); pg.start()           # same data, same port
    pg.kill()                       # SIGKILL the postmaster (a crash)
    pg.cleanup()                    # stop and remove everything
"""
import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def _bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


BINDIR = _bindir()


def available():
    return BINDIR is not None


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PostgresServer:
    def __init__(self, database="switchyard"):
        if BINDIR is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.database = database
        self.user = "postgres"
        self.port = _free_port()
        self.tmp = tempfile.mkdtemp(prefix="switchyard-pg-")
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        self.sockdir = os.path.join(self.tmp, "sock")
        self.logfile = os.path.join(self.tmp, "postgres.log")
        self.run_as = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                    self.run_as = name
                    break
                except KeyError:
                    continue
        self._initialized = False
        self._running = False
        atexit.register(self.cleanup)

    def _cmd(self, args):
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--"] + args
        return args

    def _own(self, path):
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self, timeout=60):
        if not self._initialized:
            for d in (self.sockdir,):
                os.makedirs(d, exist_ok=True)
                self._own(d)
            self._own(self.tmp)
            open(self.logfile, "a").close()
            self._own(self.logfile)
            subprocess.run(self._cmd([os.path.join(BINDIR, "initdb"), "-D", self.data, "-A",
                                      "trust", "-U", self.user, "-E", "UTF8", "--locale=C",
                                      "--no-sync"]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        r = subprocess.run(self._cmd([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-l",
                                      self.logfile, "-o", opts, "-w", "-t", str(timeout),
                                      "start"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stderr}\n{self.log_text()[-2000:]}")
        self._running = True
        if not self._initialized:
            self._initialized = True
            self.query(f"CREATE DATABASE {self.database}", database="postgres")
        return self

    def stop(self, mode="fast"):
        if not self._running:
            return
        subprocess.run(self._cmd([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "-m", mode,
                                  "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._running = False

    def kill(self):
        """SIGKILLs the postmaster and its children (a crash); start() recovers."""
        pidfile = os.path.join(self.data, "postmaster.pid")
        try:
            pid = int(open(pidfile).readline())
        except (OSError, ValueError):
            return
        # The postmaster and its children (backends, checkpointer, ...): a crash takes all.
        victims = [pid] + self._children(pid)
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        for p in victims:
            for _ in range(250):
                try:
                    os.kill(p, 0)
                    time.sleep(0.02)
                except OSError:
                    break
        self._running = False

    @staticmethod
    def _children(pid):
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = open(f"/proc/{d}/stat").read()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            if ppid == pid:
                kids.append(int(d))
        return kids

    def restart(self):
        self.stop()
        self.start()

    def log_text(self):
        try:
            return open(self.logfile, errors="replace").read()
        except OSError:
            return ""

    def cleanup(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def dsn(self):
        return self.dsn_for(self.database, self.user)

    def dsn_for(self, database, user):
        return f"host=127.0.0.1 port={self.port} user={user} dbname={database}"

    def query(self, sql, database=None, user=None):
        """Runs `sql` with psql; returns rows as lists of text (NULL as "")."""
        r = subprocess.run([os.path.join(BINDIR, "psql"), "-X", "-q", "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", user or self.user, "-d",
                            database or self.database, "-At", "-F", "\t", "-v",
                            "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({sql[:200]}): {r.stderr.strip()}")
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        return [line.split("\t") for line in out.split("\n")] if out else []

    def with_database(self, name):
        """A view of this server that queries (and whose dsn names) another database."""
        return _View(self, name, self.user)

    def with_user(self, user):
        return _View(self, self.database, user)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class _View:
    def __init__(self, server, database, user):
        self.server, self.database, self.user = server, database, user

    @property
    def dsn(self):
        return self.server.dsn_for(self.database, self.user)

    def query(self, sql):
        # Administration (grants, checks) runs as the superuser on this view's database.
        return self.server.query(sql, database=self.database)

    def with_user(self, user):
        return _View(self.server, self.database, user)

    def with_database(self, name):
        return _View(self.server, name, self.user)
