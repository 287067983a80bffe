import { parseDurationSeconds, trustProxySetting, validateEnv } from './env';

describe('environment', () => {
  it('reads durations as seconds: plain numbers and ms/s/m/h/d suffixes', () => {
    expect(parseDurationSeconds('900')).toBe(900);
    expect(parseDurationSeconds('15m')).toBe(900);
    expect(parseDurationSeconds('7d')).toBe(604800);
    expect(parseDurationSeconds('1500ms')).toBe(2);
    expect(parseDurationSeconds('banana')).toBe('banana');
  });

  it('lists every problem at once', () => {
    expect(() =>
      validateEnv({ ACCESS_TOKEN_TTL: 'banana', PORT: 'eighty', REDIS_URL: 'http://x' }),
    ).toThrow(
      /ACCESS_TOKEN_TTL="banana"[\s\S]*PORT="eighty"|PORT="eighty"[\s\S]*ACCESS_TOKEN_TTL="banana"/,
    );
    expect(() => validateEnv({ REDIS_URL: 'http://x' })).toThrow(/REDIS_URL/);
  });

  it('requires a JWT_SECRET in production, and treats empty values as unset', () => {
    expect(() => validateEnv({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET: required/);
    expect(() => validateEnv({ NODE_ENV: 'production', JWT_SECRET: '' })).toThrow(
      /JWT_SECRET: required/,
    );
    expect(validateEnv({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).JWT_SECRET).toBe(
      'x'.repeat(32),
    );
    expect(validateEnv({ DATABASE_URL: '' }).DATABASE_URL).toBeUndefined();
  });

  it('TRUST_PROXY: false, a hop count, or named ranges, addresses and CIDR blocks', () => {
    expect(validateEnv({}).TRUST_PROXY).toBe('loopback');
    expect(trustProxySetting('false')).toBe(false);
    expect(trustProxySetting('1')).toBe(1);
    expect(trustProxySetting('loopback, 172.28.0.10,10.0.0.0/8 ,fd00::/8')).toEqual([
      'loopback',
      '172.28.0.10',
      '10.0.0.0/8',
      'fd00::/8',
    ]);
    for (const ok of ['loopback', 'false', '2', '172.28.0.10', 'loopback,10.0.0.0/8', '::1']) {
      expect(validateEnv({ TRUST_PROXY: ok }).TRUST_PROXY).toBe(ok);
    }
    for (const bad of ['true', 'nginx', '10.0.0.0/33', '300.1.1.1', ',', '1.2.3.4/8/1']) {
      expect(() => validateEnv({ TRUST_PROXY: bad })).toThrow(/TRUST_PROXY/);
    }
  });
});
