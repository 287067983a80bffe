import { Users1763780000000 } from './1763780000000-Users';
import { Chat1763780100000 } from './1763780100000-Chat';
import { Personas1763780200000 } from './1763780200000-Personas';
import { SearchIndexFastupdateOff1763780300000 } from './1763780300000-SearchIndexFastupdateOff';
import { DropMembershipMuted1763780400000 } from './1763780400000-DropMembershipMuted';

/** Every migration, in order. Listed explicitly so the app, the CLI and Jest load the same set. */
export const migrations = [
  Users1763780000000,
  Chat1763780100000,
  Personas1763780200000,
  SearchIndexFastupdateOff1763780300000,
  DropMembershipMuted1763780400000,
];
