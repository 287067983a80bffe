import { isPublicAddress, parsePushUrl } from './push-url';

describe('push URL rules', () => {
  it.each([
    '127.0.0.1',
    '10.0.0.1',
    '172.16.5.4',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'fd00:ec2::254',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    'not-an-address',
  ])('%s is not public', (address) => expect(isPublicAddress(address)).toBe(false));

  it.each(['93.184.215.14', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8'])(
    '%s is public',
    (address) => expect(isPublicAddress(address)).toBe(true),
  );

  it('scheme, credentials and the allow-list', () => {
    const strict = { allowHttp: false, allowedHosts: [] };
    const listed = { allowHttp: true, allowedHosts: ['push.example.com', '::1'] };
    expect(parsePushUrl('http://push.example.com/', strict)).toBe('url must be https:');
    expect(parsePushUrl('ftp://push.example.com/', listed)).toBe('url must be http: or https:');
    expect(parsePushUrl('https://u:p@push.example.com/', strict)).toMatch(/credentials/);
    expect(parsePushUrl('https://PUSH.example.com/x', listed)).toBeInstanceOf(URL);
    expect(parsePushUrl('http://[::1]:8080/x', listed)).toBeInstanceOf(URL);
    expect(parsePushUrl('https://evil.example.com/', listed)).toMatch(/PUSH_ALLOWED_HOSTS/);
    expect(parsePushUrl('https://push.example.com.evil.net/', listed)).toMatch(
      /PUSH_ALLOWED_HOSTS/,
    );
  });
});
