package sim

// Scenarios returns the standard scenario families, each with the share of
// seeds it gets in a run of the suite (weights sum to 1000).
func Scenarios() []Weighted {
	return []Weighted{
		{250, Scenario{Name: "honest-1", Validators: 1, Heights: 5}},
		{200, Scenario{Name: "honest-4", Validators: 4, Heights: 3, Loss: 0.05, Duplicate: 0.05, Partitions: 1}},
		{60, Scenario{Name: "honest-7", Validators: 7, Heights: 3, Loss: 0.05, Duplicate: 0.05, Powers: true}},
		{30, Scenario{Name: "honest-10", Validators: 10, Heights: 3, Loss: 0.02, Duplicate: 0.02, Partitions: 1}},
		{170, Scenario{Name: "byzantine-4", Validators: 4, Heights: 3, Byzantine: 1, Behaviour: Equivocate | SplitProposals | SpamRounds, Loss: 0.02, Partitions: 1}},
		{50, Scenario{Name: "byzantine-7", Validators: 7, Heights: 3, Byzantine: 2, Behaviour: Equivocate | SplitProposals | SpamRounds, Loss: 0.02, Duplicate: 0.02, Partitions: 2}},
		{15, Scenario{Name: "byzantine-10", Validators: 10, Heights: 3, Byzantine: 3, Behaviour: SplitProposals | SpamRounds, Partitions: 1}},
		{100, Scenario{Name: "crash-4", Validators: 4, Heights: 3, Crashes: 2, CrashProb: 0.02, Loss: 0.02}},
		{40, Scenario{Name: "crash-7", Validators: 7, Heights: 3, Crashes: 3, CrashProb: 0.02, Loss: 0.02, Partitions: 1}},
		{85, Scenario{Name: "valset", Validators: 6, Heights: 4, ValsetChanges: true, Loss: 0.02, Duplicate: 0.02, CrashProb: 0.01}},
	}
}

// Weighted is a scenario with its share of seeds per 1000.
type Weighted struct {
	PerMille int
	Scenario Scenario
}
