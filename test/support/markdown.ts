/** The bodies of a Markdown page's ```sh blocks, in order (indented blocks are not included). */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map(([, body]) => body);
}
