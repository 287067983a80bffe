import { S3Storage, s3Origin, type S3Settings } from './storage';

/** `s3Origin` (the demo page's CSP allows it) is the origin of the SDK's own presigned URLs. */
describe('s3Origin', () => {
  const base = {
    bucket: 'parlor-files',
    region: 'eu-west-3',
    accessKeyId: 'k',
    secretAccessKey: 's',
  };
  const cases: [string, S3Settings, string][] = [
    ['AWS', { ...base, forcePathStyle: false }, 'https://parlor-files.s3.eu-west-3.amazonaws.com'],
    ['AWS, path style', { ...base, forcePathStyle: true }, 'https://s3.eu-west-3.amazonaws.com'],
    [
      'MinIO, path style',
      { ...base, endpoint: 'http://127.0.0.1:9000', forcePathStyle: true },
      'http://127.0.0.1:9000',
    ],
    [
      'an endpoint with virtual hosts',
      { ...base, endpoint: 'https://files.example.com', forcePathStyle: false },
      'https://parlor-files.files.example.com',
    ],
  ];
  it.each(cases)('%s', async (_name, settings, expected) => {
    const storage = new S3Storage(settings);
    const url = await storage.presignGet(
      'a/00000000-0000-4000-8000-000000000000',
      { contentType: 'image/png', disposition: 'inline' },
      60,
    );
    expect(new URL(url).origin).toBe(expected);
    expect(s3Origin(settings)).toBe(expected);
    expect(storage.origin).toBe(expected);
    storage.client.destroy();
  });
});
