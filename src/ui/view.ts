// The visualiser's view model: what the page draws, whatever the source.
// Live mode builds it from the members' event streams (src/server/uiFeed.ts),
// sandbox mode from the simulator running in the page (src/sim/sandbox.ts);
// the renderer (src/ui/web/) knows only these types. Plain JSON-able data, no
// classes, so a member can send it as is and a test can compare it.

/** A member's role as drawn; `down` is a crashed or unreachable member. */
export type RoleView = 'follower' | 'preCandidate' | 'candidate' | 'leader' | 'learner' | 'down';

/** One entry of a log's tail, coloured by term in the drawing. */
export interface EntryView {
  readonly index: number;
  readonly term: number;
  /** normal: a command; conf: a membership change; empty: a new leader's no-op (§8). */
  readonly kind: 'normal' | 'conf' | 'empty';
  /** A short human label, e.g. "set x=1" or "add 4"; may be absent. */
  readonly label?: string;
}

/** The leader's view of one follower (§5.3 nextIndex and matchIndex, etcd's progress states). */
export interface ProgressView {
  readonly id: string;
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  /** Whether the follower answered within the last election timeout (CheckQuorum). */
  readonly recentActive: boolean;
}

export interface MemberView {
  /** Stable id: the member id in hex (live) or the node number (sandbox). */
  readonly id: string;
  /** What to print on the node: the member's --name, or "n3". */
  readonly name: string;
  readonly role: RoleView;
  readonly term: number;
  /** Whom this member voted for in `term` (Figure 2 votedFor); undefined if nobody. */
  readonly vote: string | undefined;
  /** The leader this member follows, if it knows one. */
  readonly leader: string | undefined;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Index of the latest snapshot (entries at or below it are compacted). */
  readonly snapshotIndex: number;
  /** Election timer: ticks elapsed and the (randomized) timeout, for the shrinking ring. */
  readonly electionElapsed: number;
  readonly electionTimeout: number;
  /** The last entries of the log, oldest first (a bounded tail). */
  readonly log: readonly EntryView[];
  /** Present on a leader: its view of every other member. */
  readonly progress?: readonly ProgressView[];
  /** Whether the member is a voter (false: a learner). */
  readonly voter: boolean;
}

/** What a message is, for its shape in the animation. */
export type MessageKind =
  | 'vote' // RequestVote (and PreVote)
  | 'voteResponse'
  | 'append' // AppendEntries carrying entries
  | 'heartbeat' // AppendEntries without entries, and heartbeats
  | 'appendResponse'
  | 'snapshot' // InstallSnapshot
  | 'timeoutNow'
  | 'other';

/** A message in flight (sandbox), drawn moving from `from` to `to`. */
export interface MessageView {
  /** Unique within a run, so the animation can follow one message. */
  readonly key: number;
  readonly from: string;
  readonly to: string;
  readonly kind: MessageKind;
  /** The Raft message type as the core names it, e.g. "MsgApp". */
  readonly type: string;
  readonly term: number;
  /** A short description for the tooltip, e.g. "append 5..7 (term 2), commit 4". */
  readonly label: string;
  /** Whether a vote or append was refused (drawn differently). */
  readonly reject?: boolean;
  readonly sentAt: number;
  readonly deliverAt: number;
  /** True when the network will drop it (a cut link or loss): drawn fading out. */
  readonly dropped?: boolean;
}

/** A directed link that is cut (a partition, possibly one-way). */
export interface LinkView {
  readonly from: string;
  readonly to: string;
}

/** Messages per second on one directed link, for the live view's arrows. */
export interface RateView {
  readonly from: string;
  readonly to: string;
  readonly perSecond: number;
}

/** One snapshot of the whole cluster at time `now`. */
export interface ClusterView {
  /** Milliseconds since the epoch (live) or simulated milliseconds (sandbox). */
  readonly now: number;
  readonly members: readonly MemberView[];
  /** Sandbox: messages in flight. Live: empty. */
  readonly messages: readonly MessageView[];
  readonly cutLinks: readonly LinkView[];
  /** Live: message rates between members. Sandbox: empty. */
  readonly rates: readonly RateView[];
}

/** Something worth marking on the timeline. */
export type TimelineEventKind =
  | 'election' // a member started an election (became candidate) in `term`
  | 'leader' // `member` became leader of `term`
  | 'stepDown' // a leader stopped leading
  | 'crash' // a member went down (sandbox), or stopped answering (live)
  | 'restart' // a member started again
  | 'snapshot' // a member took or installed a snapshot at `index`
  | 'confChange' // a membership change was applied
  | 'partition' // links were cut (sandbox)
  | 'heal'; // links were restored (sandbox)

export interface TimelineEvent {
  /** Same clock as ClusterView.now. */
  readonly time: number;
  readonly kind: TimelineEventKind;
  readonly member: string;
  readonly term: number;
  readonly index?: number;
  /** A short description for the tooltip. */
  readonly detail?: string;
}

/** A member of the cluster as the live page learns it, to open a stream to each. */
export interface PeerView {
  readonly id: string;
  readonly name: string;
  /** Where this member serves /ui/events (its client URLs). */
  readonly clientURLs: readonly string[];
}

/**
 * What a member sends on its live event stream (GET /ui/events, Server-Sent
 * Events, one JSON object per `data:` line). The page opens one stream per
 * member and merges them: each member speaks only for itself.
 */
export type FeedMessage =
  /** First message on a stream: who this is, the cluster, and the member's remembered timeline. */
  | {
      readonly type: 'hello';
      readonly member: string;
      readonly name: string;
      /** When this member process started (ms since the epoch). */
      readonly startedAt: number;
      readonly peers: readonly PeerView[];
      readonly history: readonly TimelineEvent[];
    }
  /** The member's state, sent periodically (a few times a second). */
  | { readonly type: 'status'; readonly now: number; readonly member: MemberView; readonly rates: readonly RateView[] }
  /** Something happened on this member. */
  | { readonly type: 'event'; readonly event: TimelineEvent };

/** A client command of the explainers' key-value state machine. */
export type KvCommandView =
  | { readonly op: 'set'; readonly key: string; readonly value: string }
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'del'; readonly key: string }
  | { readonly op: 'inc'; readonly key: string };

/** A client request sent from the sandbox and what became of it. */
export interface ClientRequestView {
  readonly id: number;
  readonly command: KvCommandView;
  /** The node the request was sent to first. */
  readonly sentTo: string;
  readonly sentAt: number;
  /** pending until answered; ok with the result; failed with the reason (e.g. no leader). */
  readonly status: 'pending' | 'ok' | 'failed';
  readonly result?: string;
  readonly answeredAt?: number;
  /** How many times the client sent it (a retry after a timeout keeps the request id: applied once). */
  readonly attempts: number;
}

/**
 * What the page can do to the simulator running in it (implemented by
 * src/sim/sandbox.ts). Times are simulated milliseconds. Every action is
 * recorded, so a run is the seed plus the actions at their times: a URL can
 * carry both and replay it exactly.
 */
export interface SandboxControls {
  readonly seed: number;
  /** Simulated time now. */
  readonly now: number;
  /** Runs every event due up to now + ms (the page calls it per frame, scaled by the speed slider). */
  advance(ms: number): void;
  /** Processes exactly one event (pause and step); returns its description, or undefined if none is due. */
  stepEvent(): string | undefined;
  view(): ClusterView;
  timeline(): readonly TimelineEvent[];
  /** Recent happenings in words, newest last (the event log beside the drawing). */
  log(): readonly string[];
  requests(): readonly ClientRequestView[];
  /** A safety property the checker found violated (never, unless Raft is broken). */
  violation(): string | undefined;

  crash(node: string): void;
  restart(node: string): void;
  /** Cuts the link from -> to only (one-way); call twice for both ways. */
  cutLink(from: string, to: string): void;
  restoreLink(from: string, to: string): void;
  /** Cuts every link between the group and the rest, both ways. */
  isolate(nodes: readonly string[]): void;
  heal(): void;
  /** Probability in [0, 1) that a message is lost. */
  setLoss(rate: number): void;
  /** Sends a client request to a node (any node: a follower forwards it); returns the request id. */
  request(command: KvCommandView, to?: string): number;
  /** Adds a new node (as a learner, then promoted) or removes one, by joint consensus. */
  addNode(): string;
  removeNode(node: string): void;
  transferLeader(to: string): void;
  /** The node takes a snapshot of its state machine and compacts its log. */
  snapshot(node: string): void;
  /** The node's election timer fires now (to show a stale node campaigning). */
  campaign(node: string): void;
  /** The actions taken so far, for a shareable URL: replaying them on the same seed gives the same run. */
  actions(): readonly SandboxAction[];
  /** The guided scenario this sandbox runs, if any, and where it has got to. */
  story(): StoryProgress | undefined;
}

/** A guided scenario: a seed and a script of actions with a caption per step. */
export interface StoryInfo {
  readonly id: string;
  readonly title: string;
  /** One or two sentences: what the story shows and which rule it teaches. */
  readonly summary: string;
}

export interface StoryProgress {
  readonly story: StoryInfo;
  /** Steps reached so far (1-based; 0 before the first). */
  readonly step: number;
  readonly steps: number;
  /** The captions of the steps reached, oldest first; the last one is current. */
  readonly captions: readonly string[];
  readonly done: boolean;
}

/**
 * How the page creates a sandbox (src/sim/sandbox.ts exports
 * `createSandbox(options: SandboxOptions): SandboxControls` and
 * `STORIES: readonly StoryInfo[]`).
 */
export interface SandboxOptions {
  readonly seed: number;
  /** 3 to 7 (a story fixes its own). */
  readonly nodes: number;
  /** Initial message loss rate in [0, 1). */
  readonly loss?: number;
  /** Run this guided scenario (StoryInfo.id). */
  readonly story?: string;
  /** Replay these recorded actions (from a shared URL). */
  readonly actions?: readonly SandboxAction[];
}

/** One recorded user action, at the simulated time it was taken. */
export interface SandboxAction {
  readonly at: number;
  readonly action: string;
  readonly args: readonly (string | number)[];
}
