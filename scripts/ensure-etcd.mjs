// Makes sure an etcd server binary is available (the cluster and its tests need one). On a
// fresh Debian machine, as root, it installs Debian's etcd-server; elsewhere it says how to.
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { delimiter, join } from 'node:path';

const onPath = (name) => (process.env.PATH ?? '').split(delimiter).some((d) => existsSync(join(d, name)));
const found = () => (process.env.BORA_ETCD_BIN && existsSync(process.env.BORA_ETCD_BIN)) || onPath('etcd') || existsSync('/usr/bin/etcd');

if (!found()) {
  const canInstall = process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall) {
    console.error('etcd is not installed: run `apt-get install -y etcd-server` (Debian) or set BORA_ETCD_BIN');
    process.exit(1);
  }
  console.error('installing etcd-server (Debian package) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execSync('apt-get update -qq && apt-get install -y -qq --no-install-recommends etcd-server >/dev/null', { stdio: 'inherit', env });
  if (!found()) {
    console.error('etcd-server was installed but no etcd binary was found');
    process.exit(1);
  }
}
