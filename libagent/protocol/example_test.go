package protocol_test

import (
	"fmt"

	"github.com/agentfleet/libagent/protocol"
)

// An agent's dispatch: decode, answer what it knows, refuse the rest.
func Example() {
	for _, frame := range []string{
		`{"type":20,"tid":"t1","ls_req":{"dir":"/etc"}}`,
		`{"type":60,"tid":"t2","rpa_run":{}}`,
	} {
		req, err := protocol.Decode([]byte(frame))
		if err != nil {
			fmt.Println(err)
			continue
		}
		var rep *protocol.Msg
		switch req.Type {
		case protocol.TypeLsReq:
			rep = protocol.Reply(req, protocol.TypeLsRep)
			rep.Payload = &protocol.LsRep{Dir: req.LsReq().Dir, OK: true}
		default:
			rep = protocol.Unsupported(req)
		}
		out, _ := protocol.Encode(rep)
		fmt.Println(string(out))
	}
	// Output:
	// {"type":21,"tid":"t1","ls_rep":{"dir":"/etc","ok":true}}
	// {"type":0,"tid":"t2","errmsg":"unsupported message type 60"}
}
