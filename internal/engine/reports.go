package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reports are the final reports: a KV entry per project and room sid (read
// back by sessions lookups) and a message on the reports subject, once.
type Reports struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

// Store keeps the report of roomSID in project and publishes it on the
// reports subject of sessionID (once: a repeat is deduplicated).
func (rs *Reports) Store(ctx context.Context, project, roomSID, sessionID string, report []byte) error {
	if _, err := rs.kv.Put(ctx, reportKey(project, roomSID), report); err != nil {
		return fmt.Errorf("store report: %w", err)
	}
	msg := nats.NewMsg(ReportSubject(sessionID))
	msg.Data = report
	msg.Header.Set(HeaderRoomSID, roomSID)
	msg.Header.Set("Lkwh-Session-Id", sessionID)
	if project != "" {
		msg.Header.Set(headerProject, project)
	}
	if _, err := rs.js.PublishMsg(ctx, msg, jetstream.WithMsgID("report/"+ProjectPrefix(project)+roomSID)); err != nil {
		return fmt.Errorf("publish report: %w", err)
	}
	return nil
}

// Put replaces the stored report of roomSID in project (the KV entry)
// without publishing it again: a report amended by events that arrived
// after it was published.
func (rs *Reports) Put(ctx context.Context, project, roomSID string, report []byte) error {
	if _, err := rs.kv.Put(ctx, reportKey(project, roomSID), report); err != nil {
		return fmt.Errorf("store report: %w", err)
	}
	return nil
}

// Tail calls f with published reports, newest first, until f returns false
// or none is left; each as stored now (see Put), else as published. Its
// cost follows what f takes, not history.
func (rs *Reports) Tail(ctx context.Context, f func(report []byte) bool) error {
	info, err := rs.stream.Info(ctx)
	if err != nil {
		return err
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := rs.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		data := m.Data
		if sid := m.Header.Get(HeaderRoomSID); sid != "" {
			e, err := rs.kv.Get(ctx, reportKey(m.Header.Get(headerProject), sid))
			switch {
			case err == nil:
				data = e.Value()
			case !errors.Is(err, jetstream.ErrKeyNotFound):
				return err
			}
		}
		if !f(data) {
			return nil
		}
	}
	return nil
}

// Before calls f with published reports older than stream sequence before
// (0: from the newest), newest first, until f returns false or none is
// left. Each is one direct read by sequence: the cost follows what f takes,
// not history, so a page of a long history costs what its first page does.
func (rs *Reports) Before(ctx context.Context, before uint64, f func(seq uint64, at time.Time, report []byte) bool) error {
	info, err := rs.stream.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if before != 0 && before-1 < last {
		last = before - 1
	}
	for seq := last; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := rs.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !f(seq, m.Time.UTC(), m.Data) {
			return nil
		}
	}
	return nil
}

// CountSince is how many reports were published at or after t: a binary
// search over the stream's sequences by message time (about log2 of the
// reports held, in direct reads), never a scan.
func (rs *Reports) CountSince(ctx context.Context, t time.Time) (int, error) {
	info, err := rs.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	st := info.State
	if st.Msgs == 0 || st.LastTime.Before(t) {
		return 0, nil
	}
	lo, hi := st.FirstSeq, st.LastSeq // the answer: the first seq at or after t, in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := rs.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(SubjectReportsAll))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, err
		}
		if m.Time.Before(t) {
			lo = m.Sequence + 1
		} else {
			hi = mid
		}
	}
	return int(st.LastSeq - lo + 1), nil
}

// headerProject names the project of a published report.
const headerProject = "Lkwh-Project"

// reportKey is the KV key of a room's report: two projects may (in
// principle) reuse a room sid, and each keeps its own report.
func reportKey(project, roomSID string) string { return ProjectPrefix(project) + Key(roomSID) }
