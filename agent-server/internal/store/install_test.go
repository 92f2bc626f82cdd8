package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestInstallActionsSQLite(t *testing.T) { runInstallSuite(t, sqliteTestConfig) }
func TestInstallActionsMySQL(t *testing.T)  { runInstallSuite(t, mysqlTestConfig) }

func runInstallSuite(t *testing.T, nc newConfig) {
	ctx := context.Background()
	st := openStore(t, nc(t))
	is, ok := st.(InstallStore)
	if !ok {
		t.Fatalf("%T does not implement InstallStore", st)
	}
	task, err := st.CreateTask(ctx, Task{Kind: KindFleet, State: TaskRunning, CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	got, err := is.ListInstallActions(ctx, task.ID, "a")
	if err != nil || len(got) != 0 {
		t.Fatalf("empty log: %v %v", got, err)
	}
	acts := []InstallAction{
		{TaskID: task.ID, AgentID: "a", N: 1, Action: "install", Name: "app.deb", Time: 1700000003, Msg: "exit code 1: ✗"},
		{TaskID: task.ID, AgentID: "a", N: 0, Action: "download", Name: "app.deb", Time: 1700000000, OK: true},
	}
	if err := is.PutInstallActions(ctx, acts); err != nil {
		t.Fatal(err)
	}
	// A replay of the same positions, plus the end.
	acts = append(acts, InstallAction{TaskID: task.ID, AgentID: "a", N: 2, Action: "done", Name: task.ID, Time: 1700000003, Msg: "exit code 1: ✗"})
	if err := is.PutInstallActions(ctx, acts); err != nil {
		t.Fatal(err)
	}
	got, err = is.ListInstallActions(ctx, task.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := []InstallAction{acts[1], acts[0], acts[2]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("log\n got %+v\nwant %+v", got, want)
	}
	if other, _ := is.ListInstallActions(ctx, task.ID, "b"); len(other) != 0 {
		t.Fatalf("agent b: %+v", other)
	}
	for _, bad := range []InstallAction{
		{TaskID: task.ID, AgentID: "a", N: -1, Action: "file"},
		{TaskID: task.ID, AgentID: "a", N: MaxInstallActions, Action: "file"},
		{TaskID: task.ID, AgentID: "a", N: 3},
		{TaskID: "", AgentID: "a", N: 3, Action: "file"},
	} {
		if err := is.PutInstallActions(ctx, []InstallAction{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	if err := st.UpdateTaskState(ctx, task.ID, TaskDone, t0, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := is.ListInstallActions(ctx, task.ID, "a"); len(got) != 0 {
		t.Fatalf("after the task's deletion: %+v", got)
	}
}
