import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { trustProxySetting, validateEnv } from '../src/config/env';

/**
 * No Docker engine runs here, so the deployment files are checked for what matters: the
 * services, the replicas, and nginx passing WebSocket upgrades to every replica.
 */
const ROOT = process.cwd();

describe('deployment files', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<
      string,
      {
        build?: string;
        image?: string;
        deploy?: { replicas?: number };
        environment?: Record<string, string>;
        volumes?: string[];
        networks?: string[] | Record<string, { ipv4_address?: string } | null>;
      }
    >;
    networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } }>;
  };

  it('docker-compose.yml: postgres, redis, two Parlor replicas on both, and nginx', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['nginx', 'parlor', 'postgres', 'redis']);
    const parlor = compose.services.parlor;
    expect(parlor.build).toBe('.');
    expect(parlor.deploy?.replicas).toBe(2);
    expect(parlor.environment?.DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
    expect(parlor.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(parlor.environment?.NODE_ENV).toBe('production');
    expect(compose.services.nginx.volumes).toContain(
      './deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro',
    );
  });

  it("Parlor believes X-Forwarded-For from nginx alone: TRUST_PROXY is nginx's fixed address on their shared network", () => {
    const nginx = compose.services.nginx.networks as Record<string, { ipv4_address?: string }>;
    const parlor = compose.services.parlor;
    const [network, { ipv4_address: address }] = Object.entries(nginx)[0];
    expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(parlor.networks).toContain(network);
    expect(compose.networks?.[network]?.ipam?.config?.[0]?.subnet).toBeDefined();
    const trusted = parlor.environment?.TRUST_PROXY ?? '';
    expect(trustProxySetting(trusted)).toEqual([address]);
    expect(validateEnv({ TRUST_PROXY: trusted }).TRUST_PROXY).toBe(trusted);
    // nginx appends the peer it saw, so the client cannot choose the address Parlor uses.
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx.conf'), 'utf8');
    expect(conf).toMatch(/X-Forwarded-For \$proxy_add_x_forwarded_for/);
  });

  it('nginx.conf balances HTTP and WebSocket upgrades over the replicas', () => {
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx.conf'), 'utf8');
    expect(conf).toMatch(/upstream parlor \{[^}]*server parlor:3000/);
    expect(conf).toMatch(
      /location \/socket\.io\/ \{[^}]*proxy_set_header Upgrade \$http_upgrade;[^}]*proxy_set_header Connection \$connection_upgrade;/,
    );
    expect(conf).toMatch(/proxy_http_version 1\.1;/);
  });

  it('the Dockerfile runs the built server as a non-root user with a health check', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    expect(dockerfile).toMatch(/CMD \["node", "dist\/src\/main\.js"\]/);
  });
});
