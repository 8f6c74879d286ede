#!/bin/sh
# Writes a store with the receiver of the commit before projects (0d71e82):
# a room still open (legacy-open: alice joined) and a room reported
# (legacy-done: bob joined and left, room finished).
set -e
LK=${LK:-lkwebhook}
cat > cfg.json <<'JSON'
{"dev": true, "finalize_grace": "1s", "max_session_age": "87600h", "record_ttl": "876000h"}
JSON
$LK serve --config cfg.json --dev --addr 127.0.0.1:18089 --data ./data > serve.log 2>&1 &
pid=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18089/healthz >/dev/null && break; sleep 0.1; done
U=http://127.0.0.1:18089/voice/livekit/webhooks
T=1767225600
$LK send room_started --url $U --room legacy-open --room-sid RM_legacyopen --id EV_lo1 --created-at $T
$LK send participant_joined --url $U --room legacy-open --room-sid RM_legacyopen --identity alice --participant-sid PA_alice --id EV_lo2 --created-at $((T+1))
$LK send room_started --url $U --room legacy-done --room-sid RM_legacydone --id EV_ld1 --created-at $T
$LK send participant_joined --url $U --room legacy-done --room-sid RM_legacydone --identity bob --participant-sid PA_bob --id EV_ld2 --created-at $((T+1))
$LK send participant_left --url $U --room legacy-done --room-sid RM_legacydone --identity bob --participant-sid PA_bob --id EV_ld3 --created-at $((T+61))
$LK send room_finished --url $U --room legacy-done --room-sid RM_legacydone --id EV_ld4 --created-at $((T+62))
for i in $(seq 1 100); do
  curl -s http://127.0.0.1:18089/voice/livekit/sessions/legacy-done | grep -q '"disposition"' && break; sleep 0.1
done
sleep 1  # the report's delivery (hooks, Beluga) after its record is fixed
curl -s http://127.0.0.1:18089/voice/livekit/sessions/legacy-done; echo
curl -s http://127.0.0.1:18089/voice/livekit/sessions/legacy-open; echo
kill -TERM $pid; wait $pid || true
