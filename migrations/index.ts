import { Users1763780000000 } from './1763780000000-Users';
import { Chat1763780100000 } from './1763780100000-Chat';
import { Personas1763780200000 } from './1763780200000-Personas';
import { SearchIndexFastupdateOff1763780300000 } from './1763780300000-SearchIndexFastupdateOff';
import { DropMembershipMuted1763780400000 } from './1763780400000-DropMembershipMuted';
import { Moderation1763780500000 } from './1763780500000-Moderation';
import { Notifications1763780600000 } from './1763780600000-Notifications';
import { Attachments1763780700000 } from './1763780700000-Attachments';
import { PersonaStreamInterrupted1763780750000 } from './1763780750000-PersonaStreamInterrupted';
import { PersonaTurns1763780800000 } from './1763780800000-PersonaTurns';
import { PersonaUsage1763780810000 } from './1763780810000-PersonaUsage';
import { PersonaMemory1763780820000 } from './1763780820000-PersonaMemory';
import { SearchPendingList1763780900000 } from './1763780900000-SearchPendingList';
import { AttachmentProcessing1763780950000 } from './1763780950000-AttachmentProcessing';
import { PushersSession1763781000000 } from './1763781000000-PushersSession';

/** Every migration, in order. Listed explicitly so the app, the CLI and Jest load the same set. */
export const migrations = [
  Users1763780000000,
  Chat1763780100000,
  Personas1763780200000,
  SearchIndexFastupdateOff1763780300000,
  DropMembershipMuted1763780400000,
  Moderation1763780500000,
  Notifications1763780600000,
  Attachments1763780700000,
  PersonaStreamInterrupted1763780750000,
  PersonaTurns1763780800000,
  PersonaUsage1763780810000,
  PersonaMemory1763780820000,
  SearchPendingList1763780900000,
  AttachmentProcessing1763780950000,
  PushersSession1763781000000,
];
