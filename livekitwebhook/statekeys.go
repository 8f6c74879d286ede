package livekitwebhook

// Keys written into a Beluga Session.State.
const (
	StateKeyRoomName = "livekit.room_name"
	StateKeyRoomSID  = "livekit.room_sid"
	StateKeySession  = "livekit.session_id"
	StateKeyReport   = "livekit.report"
)
